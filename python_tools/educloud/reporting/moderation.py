"""Moderating the illicit-content reports (C9): the moderation API's client and takedowns.

The report service (educloud.reporting.service, deployed by the reporting role) keeps
the reports; its moderation API is served on the admin vhost only, behind a bearer token.
A takedown disables the reported public link through educloud.clients.nextcloud, then records
the decision (who, what, when, which shares) in the service, append-only.

Nextcloud's OCS share API lists only the caller's own shares (GET /shares, "Get all shares
from the user": ocs-share-api, docs.nextcloud.com/server/latest/developer_manual/
client_apis/OCS/ocs-share-api.html) and has no parameter listing every account's shares;
`reshares=true` widens a listing to the shares other accounts made of the caller's own
files (ShareAPIController::getShares). Deleting is allowed to the share's owner, its
sharer or its recipient only (ShareAPIController::canDeleteShare, nextcloud/server), not
to admins. So a takedown first looks for the share among the shares of the Nextcloud
account it runs as. A link of another account is taken down as its owner: the owner's uid
is what the link's public WebDAV tells anyone (NextcloudClient.public_link_owner; for a
password-protected link the moderator gives it), and a short-lived app password of that
owner (occ user:auth-tokens:add on the Nextcloud host, deleted after: OwnerAccess) lists
and deletes the share. Without occ it stops and says so, rather than recording a takedown
that did not happen; a takedown is recorded only once the link no longer opens.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from educloud.clients.nextcloud import NextcloudClient, NextcloudRequestError, Share
from educloud.clients.nextcloud.occ import OccAppPasswords, OccRunner
from educloud.errors import EducloudError
from educloud.reporting.service.text import visible

TOKEN_ENV = "EDUCLOUD_MODERATION_TOKEN"  # noqa: S105 - the variable's name, not a token
TOKEN_FILE_ENV = "EDUCLOUD_MODERATION_TOKEN_FILE"  # noqa: S105
URL_ENV = "EDUCLOUD_MODERATION_URL"
CA_ENV = "EDUCLOUD_MODERATION_CA"
STATUSES = ("open", "taken_down", "dismissed", "archived", "all")
_REPORT_ID = re.compile(r"^SIG-[A-Z0-9]{6}$")
# A Nextcloud public link: /s/<token>, also behind /index.php (ShareController's route).
_SHARE_PATH = re.compile(r"^(?:/index\.php)?/s/([A-Za-z0-9_-]{4,64})/?$")


class ModerationError(EducloudError):
    """A moderation step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Decision:
    action: str
    by: str
    at: datetime
    note: str = ""
    share_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    id: str
    created_at: datetime
    content_kind: str
    status: str
    link: str | None = None
    description: str | None = None
    contact_email: str | None = None
    notify_pending: bool = False
    archived_at: datetime | None = None
    decisions: tuple[Decision, ...] = ()

    @property
    def last_decision(self) -> Decision | None:
        return self.decisions[-1] if self.decisions else None


@dataclass(frozen=True)
class Takedown:
    """What a takedown did (or, dry, would do)."""

    report: Report
    dry_run: bool
    token: str | None
    share_ids: tuple[str, ...] = ()
    """The shares disabled (or to disable)."""
    already_gone: bool = False
    """The link no longer opened: recorded, nothing to disable."""
    already_recorded: bool = False
    """The report was taken down before: nothing done, nothing recorded again."""
    paths: tuple[str, ...] = field(default=())
    """The shared files or folders, for the operator (not recorded)."""
    owner: str | None = None
    """The account owning the link, when it is not the one the takedown runs as."""


class OwnerAccess(Protocol):
    """Acting as the account that owns a share (the only one, with its sharer, that
    Nextcloud lets delete it)."""

    def client_for(self, user_id: str) -> AbstractContextManager[NextcloudClient]: ...


class OccOwnerAccess:
    """The owner's Nextcloud account through a short-lived app password from occ on the
    Nextcloud host (as `educloud export` reads a user's files), deleted when done."""

    def __init__(self, runner: OccRunner, base_url: str, *, verify: bool | str = True) -> None:
        self.runner = runner
        self.base_url = base_url
        self.verify = verify

    @contextmanager
    def client_for(self, user_id: str) -> Iterator[NextcloudClient]:
        with OccAppPasswords(self.runner).app_password(user_id) as app_password:
            yield NextcloudClient(self.base_url, user_id, app_password, verify=self.verify)


def token_from_env(env: Mapping[str, str] | None = None) -> str:
    """The moderators' bearer token: EDUCLOUD_MODERATION_TOKEN or the file in ..._FILE."""
    env = os.environ if env is None else env
    token = env.get(TOKEN_ENV, "").strip()
    if not token and env.get(TOKEN_FILE_ENV):
        try:
            token = Path(env[TOKEN_FILE_ENV]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ModerationError(
                f"cannot read {TOKEN_FILE_ENV}={env[TOKEN_FILE_ENV]}: {exc.strerror}"
            ) from exc
    if not token:
        raise ModerationError(
            f"no moderation token: set {TOKEN_ENV} or {TOKEN_FILE_ENV} (a file holding it); "
            "it is never taken from the command line"
        )
    return token


def operator_login() -> str:
    """Who runs the tool: the default author of a decision."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class ModerationClient:
    """The report service's moderation API (…/moderation/api/ on the admin vhost)."""

    def __init__(
        self, url: str, token: str, *, verify: bool | str = True, timeout: float = 30.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ModerationError(
                f"{url!r} is not the moderation API's address: give "
                "https://<admin vhost>/moderation/api"
            )
        self.url = url.rstrip("/")
        self._token = token
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc: the token goes to `url` only
        self._verify = verify
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ModerationClient(url={self.url!r})"

    def list_reports(self, status: str = "all") -> list[Report]:
        if status not in STATUSES:
            raise ModerationError(f"status {status!r}: choose one of {', '.join(STATUSES)}")
        data = self._call("GET", "reports", params={"status": status})
        return [_report(item) for item in data.get("reports", [])]

    def get_report(self, report_id: str) -> Report:
        return _report(self._call("GET", f"reports/{_checked_id(report_id)}"))

    def decide(
        self,
        report_id: str,
        action: str,
        by: str,
        note: str = "",
        share_ids: Sequence[str] = (),
        *,
        reopen: bool = False,
    ) -> Report:
        body: dict[str, Any] = {
            "action": action,
            "by": by,
            "note": note,
            "share_ids": list(share_ids),
        }
        if reopen:
            body["reopen"] = True
        route = f"reports/{_checked_id(report_id)}/decision"
        return _report(self._call("POST", route, json_body=body))

    def purge(self) -> dict[str, Any]:
        """Archive the reports past their retention (the service knows the period)."""
        return self._call("POST", "purge")

    # retention's ReportArchive (educloud.retention.rules): `before` is the first day
    # still kept; the service never archives a report younger than its retention_days.

    def due(self, before: date) -> int:
        """Reports created before `before` (00:00 UTC) and not archived yet."""
        return int(self._call("GET", "purge", params={"before": before.isoformat()})["due"])

    def archive(self, before: date) -> int:
        """Archive the reports created before `before`; how many were archived."""
        done = self._call("POST", "purge", json_body={"before": before.isoformat()})
        return len(done.get("archived", []))

    def retry_mail(self) -> dict[str, Any]:
        return self._call("POST", "notify")

    def _call(
        self,
        method: str,
        route: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> dict[str, Any]:
        what = f"{method} {route}"
        try:
            response = self._session.request(
                method,
                f"{self.url}/{route}",
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise ModerationError(
                f"{what}: TLS with {self.url} failed: give the deployment's CA in {CA_ENV}"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ModerationError(
                f"{what}: cannot reach {self.url} ({type(exc).__name__}): the moderation API "
                "is served on the admin vhost, from the administrators' networks only"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict):
            return data
        message = data.get("error") if isinstance(data, dict) else None
        hint = {
            401: f"the token was refused: check {TOKEN_ENV} / {TOKEN_FILE_ENV}",
            404: "no such report (educloud moderation list shows them)",
            409: "the report is closed: --reopen revises a decision",
            503: "the report service cannot reach its database",
        }.get(response.status_code, "is the URL the moderation API (…/moderation/api)?")
        detail = f" ({message})" if message else ""
        raise ModerationError(f"{what}: HTTP {response.status_code}{detail}: {hint}")


def for_terminal(text: str) -> str:
    """Text from a report (or quoting one) as a terminal may show it: every control or
    format character (ESC, CR, C1 CSI, bidi overrides, zero-width) written as its escape.
    Line breaks are kept; markup stays plain characters (print it as text, not markup)."""
    return visible(text, keep_newlines=True)


def json_for_terminal(data: Any) -> str:
    """`data` as indented JSON that holds no raw control or format character: JSON escapes
    (\\u001b, \\u202e) instead, which any JSON reader decodes to the same text."""
    dumped = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    # Outside strings JSON has only ASCII punctuation, digits, letters and the indent's line
    # breaks; inside, json.dumps escaped C0 already: what is left is DEL, C1, format
    # characters, separators and lone surrogates, each rewritten as a \uXXXX escape.
    return "".join(c if c == "\n" or visible(c) == c else f"\\u{ord(c):04x}" for c in dumped)


def share_token(link: str) -> str | None:
    """The token of a public link https://<host>/s/<token>; None for any other URL."""
    try:
        match = _SHARE_PATH.match(urlsplit(link).path)
    except ValueError:
        return None
    return match.group(1) if match else None


def link_origin(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.scheme}://{parts.netloc}"


def takedown(
    moderation: ModerationClient,
    nextcloud: NextcloudClient,
    report_id: str,
    *,
    by: str,
    note: str = "",
    dry_run: bool = False,
    reopen: bool = False,
    owners: OwnerAccess | None = None,
    owner: str | None = None,
) -> Takedown:
    """Disable the reported public link, then record the takedown (who, when, which shares).

    A link that `nextcloud`'s account does not own is deleted as its owner through
    `owners` (the owner read from the link, or `owner` for a password-protected one).
    Idempotent: a link already gone is recorded as such and succeeds; a report already
    taken down whose link no longer opens succeeds without a second record; a takedown
    interrupted after the deletion is recorded by the next run. `dry_run` finds the shares
    (the owner only, for another account's link) and changes nothing.
    """
    report = moderation.get_report(report_id)
    if report.archived_at is not None:
        raise ModerationError(f"{report.id} is archived (past its retention): nothing to do")
    if report.status == "dismissed" and not reopen:
        raise ModerationError(_closed(report) + ": --reopen to take it down instead")
    token = share_token(report.link) if report.link else None
    if token is None:
        raise ModerationError(
            f"{report.id} has no public share link ({report.link or 'description only'}): "
            "find the content from its description, disable it in Nextcloud, then record it "
            "with educloud moderation dismiss or a takedown of a report with the link"
        )
    shares = [s for s in nextcloud.list_shares() if s.token == token]
    active = bool(shares) or nextcloud.public_link_active(token)
    if report.status == "taken_down" and not reopen:
        if active:
            raise ModerationError(
                _closed(report) + f" but {report.link} opens again: --reopen to take it down"
            )
        return Takedown(report, dry_run, token, already_gone=True, already_recorded=True)
    # Another account's link: whose it is (its shares are listed and deleted as that owner).
    owner = _owner(nextcloud, report, token, owners, owner) if active and not shares else None
    found = Takedown(
        report,
        dry_run,
        token,
        share_ids=tuple(s.id for s in shares),
        already_gone=not active,
        paths=tuple(s.path for s in shares),
        owner=owner,
    )
    if dry_run:
        return found
    if owner is not None and owners is not None:
        with owners.client_for(owner) as as_owner:
            # With reshares: the link may have been made of the owner's file by another
            # account it was shared with; the files' owner may delete it too.
            shares = [s for s in as_owner.list_shares(reshares=True) if s.token == token]
            if not shares:
                raise ModerationError(
                    f"{report.link} opens but is none of the shares of {owner}'s files: "
                    "find it in Nextcloud's administration; nothing was recorded"
                )
            for share in shares:
                _delete(as_owner, share)
    else:
        for share in shares:
            _delete(nextcloud, share)
    if active and nextcloud.public_link_active(token):
        raise ModerationError(
            f"{report.link} still opens after its shares were deleted; nothing was recorded"
        )
    recorded_note = note or ("" if active else "public link already gone at the takedown")
    if owner is not None:
        recorded_note = f"{recorded_note} (share of {owner})".strip()
    share_ids = tuple(s.id for s in shares)
    recorded = moderation.decide(report.id, "takedown", by, recorded_note, share_ids, reopen=reopen)
    return Takedown(
        recorded,
        False,
        token,
        share_ids=share_ids,
        already_gone=found.already_gone,
        paths=tuple(s.path for s in shares),
        owner=owner,
    )


def _owner(
    nextcloud: NextcloudClient,
    report: Report,
    token: str,
    owners: OwnerAccess | None,
    given: str | None,
) -> str:
    """The account owning a link that `nextcloud`'s account does not own."""
    if owners is None:
        raise ModerationError(
            f"{report.link} still opens, but it is not a share of {nextcloud.user}: "
            "Nextcloud's share API lets only a share's owner delete it. Give --inventory so "
            "that the takedown acts as the owner (occ on the Nextcloud host), or run it with "
            "the owner's account (EDUCLOUD_NEXTCLOUD_USER and an app password); nothing "
            "was recorded"
        )
    owner = given or nextcloud.public_link_owner(token)
    if owner is None:
        raise ModerationError(
            f"{report.link} is password protected, so its owner cannot be read from the "
            "link: give --owner UID (occ sharing:list on the Nextcloud host lists the "
            "shares with their owners); nothing was recorded"
        )
    return owner


def dismiss(
    moderation: ModerationClient, report_id: str, *, by: str, note: str = "", reopen: bool = False
) -> Report:
    """Close the report without a takedown (the content was found lawful), recorded."""
    report = moderation.get_report(report_id)
    if report.status != "open" and not reopen:
        raise ModerationError(_closed(report) + ": --reopen to revise the decision")
    return moderation.decide(report.id, "dismiss", by, note, reopen=reopen)


def _delete(nextcloud: NextcloudClient, share: Share) -> None:
    try:
        nextcloud.delete_share(share.id)
    except NextcloudRequestError as exc:
        if 404 not in (exc.http_status, exc.ocs_status):
            raise  # gone since the listing is fine: the link is disabled either way


def _closed(report: Report) -> str:
    last = report.last_decision
    who = f" by {last.by} on {last.at:%Y-%m-%d %H:%M %Z}" if last else ""
    return f"{report.id} is {report.status.replace('_', ' ')}{who}"


def _checked_id(report_id: str) -> str:
    report_id = report_id.strip().upper()
    if not _REPORT_ID.match(report_id):
        raise ModerationError(f"{report_id!r} is not a report reference (SIG-XXXXXX)")
    return quote(report_id)


def _report(data: Any) -> Report:
    try:
        return Report(
            id=str(data["id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            content_kind=str(data["content_kind"]),
            status=str(data["status"]),
            link=data.get("link"),
            description=data.get("description"),
            contact_email=data.get("contact_email"),
            notify_pending=bool(data.get("notify_pending")),
            archived_at=(
                datetime.fromisoformat(data["archived_at"]) if data.get("archived_at") else None
            ),
            decisions=tuple(
                Decision(
                    action=str(d["action"]),
                    by=str(d["by"]),
                    at=datetime.fromisoformat(d["at"]),
                    note=str(d.get("note") or ""),
                    share_ids=tuple(str(i) for i in d.get("share_ids") or ()),
                )
                for d in data.get("decisions") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModerationError(
            f"unexpected answer from the moderation API ({type(exc).__name__}: {exc}): "
            "is the URL the report service's moderation API?"
        ) from exc
