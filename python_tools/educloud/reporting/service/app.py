"""The WSGI application: the public form (/signalement) and the moderation API."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import smtplib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg2

from . import form, notify, pages, store
from .config import Config
from .text import has_hidden, visible

log = logging.getLogger("educloud_reports")

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]

API_PREFIX = "/moderation/api/"
REPORT_ID = re.compile(r"^SIG-[A-Z0-9]{6}$")
DECISION_KEYS = {"action", "by", "note", "share_ids", "reopen"}
BY_MAX, NOTE_MAX, SHARE_IDS_MAX = 200, 4000, 100
RETRY_PENDING = 10
"""Pending mails retried after each accepted report (the oldest first)."""
STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    411: "411 Length Required",
    413: "413 Content Too Large",
    415: "415 Unsupported Media Type",
    429: "429 Too Many Requests",
    503: "503 Service Unavailable",
}


class _RefusedError(Exception):
    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class ReportsApp:
    """The service; `clock` is the wall clock the form tokens are checked against."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        try:  # at start; if the database is not up yet, on the first request that needs it
            with self._database():
                pass
        except _RefusedError:
            log.warning("database unavailable at start: the schema waits for the first request")

    # -- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        base = self.config.public_base_path
        try:
            if any(segment in (".", "..") for segment in path.split("/")):
                # nginx matches its locations on the normalised path but passes the raw one
                # on: never read a path another way than nginx did (the routes are exact
                # today, so this only keeps a future prefix route from being reached).
                raise _RefusedError(404, _MESSAGES[404])
            if path.startswith(API_PREFIX):
                return self._api(environ, start_response, method, path[len(API_PREFIX) :])
            if path == base:
                if method in ("GET", "HEAD"):
                    return self._form(start_response, environ)
                if method == "POST":
                    return self._submit(environ, start_response)
                return self._html(start_response, 405, self._message(405), [("Allow", "GET, POST")])
            if path == base + "/health" and method in ("GET", "HEAD"):
                return self._health(start_response)
            return self._html(start_response, 404, self._message(404))
        except _RefusedError as refused:
            if path.startswith(API_PREFIX):
                return self._json(
                    start_response, refused.status, {"error": refused.message}, refused.headers
                )
            page = pages.message_page(
                platform=self.config.platform_name,
                title=_TITLES.get(refused.status, "Signalement refusé"),
                message=refused.message,
                back=base if refused.status in (400, 403, 413, 429) else None,
            )
            return self._html(start_response, refused.status, page, refused.headers)

    # -- the public form -------------------------------------------------------------

    def _form(self, start_response: StartResponse, environ: dict[str, Any]) -> Iterable[bytes]:
        page = self._form_page(environ)
        return self._html(start_response, 200, b"" if environ["REQUEST_METHOD"] == "HEAD" else page)

    def _form_page(
        self,
        environ: dict[str, Any],
        values: dict[str, str] | None = None,
        problems: list[str] | None = None,
    ) -> bytes:
        """The form, with a fresh token for this client's network."""
        return pages.form_page(
            platform=self.config.platform_name,
            action=self.config.public_base_path,
            privacy_url=self.config.privacy_url,
            token=form.issue_token(
                self.config.form_secret, self.clock(), client=self._client(environ)
            ),
            values=values,
            problems=problems,
        )

    def _submit(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self._check_origin(environ)
        body = self._read_body(environ)
        client = self._client(environ)
        now = self.clock()
        try:
            submission = form.parse(
                body,
                environ.get("CONTENT_TYPE", ""),
                secret=self.config.form_secret,
                client=client,
                platform_hosts=self._platform_hosts(environ),
                now=now,
                ages=self.config.form_token,
            )
        except form.InvalidReportError as invalid:
            page = self._form_page(environ, invalid.values, invalid.problems)
            return self._html(start_response, 400, page)
        limits = self.config.rate_limit
        quota = store.Quota(
            limits.per_address_per_hour, limits.global_per_hour, limits.ceiling_per_hour
        )
        with self._database() as conn:
            decision, reference = store.store_if_allowed(
                conn,
                submission.report,
                store.client_hash(conn, client),
                quota,
                submission.token.nonce,
                submission.token.expires_at,
                int(now),
            )
            if decision.replayed:
                values = _typed_values(submission.report)
                page = self._form_page(environ, values, [form.REPLAYED_FORM_MESSAGE])
                return self._html(start_response, 400, page)
            if not decision.allowed or reference is None:
                minutes = max(1, round(decision.retry_after / 60))
                raise _RefusedError(
                    429,
                    "Trop de signalements ont été envoyés depuis une heure. Réessayez dans "
                    f"{minutes} minute{'s' if minutes > 1 else ''}, ou écrivez aux modérateurs "
                    "si c'est urgent.",
                    [("Retry-After", str(decision.retry_after))],
                )
            log.info("report %s stored", reference)
            waiting = [r.id for r in store.pending_notifications(conn, RETRY_PENDING)]
            self._notify([reference, *waiting], conn)
        page = pages.receipt_page(platform=self.config.platform_name, reference=reference)
        return self._html(start_response, 200, page)

    def _client(self, environ: dict[str, Any]) -> str:
        """The client the quota and the form's token are bound to: its IPv4 address, or
        the /64 of its IPv6 address (what one subscriber gets: rotating addresses within
        it must not multiply the quota)."""
        return client_network(_client_address(environ, self.config.trusted_proxies))

    def _check_origin(self, environ: dict[str, Any]) -> None:
        """A post comes from a page of the deployment's own sites, or is refused (403).

        Browsers say where a post comes from in Origin (every POST, "null" from an opaque
        origin) or, older ones, in Referer: either must be one of the deployment's sites
        (`site_hosts`), else the site the form is posted to. Cross-site posts (another
        site's page making its visitors send reports with tokens it fetched) are refused.
        A post with neither header is accepted: every current browser sends Origin on a
        POST, so a request without it is a program, which could send any header it likes
        (the token, the quota and the proxy's limits hold it).
        """
        origin = environ.get("HTTP_ORIGIN")
        referer = environ.get("HTTP_REFERER")
        fetch_site = str(environ.get("HTTP_SEC_FETCH_SITE", "")).strip().lower()
        if origin is None and referer is None and fetch_site != "cross-site":
            return
        claimed = _origin_of(str(origin if origin is not None else referer))
        if fetch_site != "cross-site" and claimed in self._own_origins(environ):
            return
        log.warning("cross-site post refused (from %s)", visible(claimed or "an opaque origin"))
        raise _RefusedError(
            403,
            "Ce signalement n'a pas été envoyé depuis le formulaire de la plateforme : il n'a "
            "pas été enregistré. Ouvrez la page de signalement de la plateforme et envoyez-le "
            "depuis cette page.",
        )

    def _own_origins(self, environ: dict[str, Any]) -> set[str]:
        if self.config.site_hosts:
            return {f"https://{host}" for host in self.config.site_hosts}
        peer = str(environ.get("REMOTE_ADDR", ""))
        scheme = str(environ.get("wsgi.url_scheme", "http"))
        if peer in self.config.trusted_proxies:
            forwarded = str(environ.get("HTTP_X_FORWARDED_PROTO", "")).strip().lower()
            scheme = forwarded if forwarded in ("http", "https") else scheme
        host = str(environ.get("HTTP_HOST") or "")
        own = _origin_of(f"{scheme}://{host}") if host else None
        return {own} if own else set()

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The request body, refused before any of it is read when it is declared too big."""
        declared = environ.get("CONTENT_LENGTH") or ""
        if not declared:
            raise _RefusedError(411, "La taille de l'envoi n'est pas indiquée.")
        if not declared.isdigit():
            raise _RefusedError(400, "L'envoi est mal formé.")
        length = int(declared)
        if length > self.config.max_body_bytes:
            raise _RefusedError(
                413,
                f"L'envoi est trop volumineux ({self.config.max_body_bytes // 1024} Kio au "
                "plus) : raccourcissez la description.",
            )
        body: bytes = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:
            raise _RefusedError(400, "L'envoi est incomplet : renvoyez le formulaire.")
        return body

    def _platform_hosts(self, environ: dict[str, Any]) -> tuple[str, ...]:
        if self.config.platform_hosts:
            return self.config.platform_hosts
        host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "")
        return (host.rsplit(":", 1)[0].lower(),) if host else ()

    def _notify(self, report_ids: list[str], conn: store.Connection) -> tuple[list[str], list[str]]:
        """Mail each report not mailed yet; a failure leaves it notify_pending (retried
        after the next accepted report, or by POST /moderation/api/notify)."""
        sent: list[str] = []
        for report_id in dict.fromkeys(report_ids):
            try:
                with store.claim_notification(conn, report_id) as report:
                    if report is not None:
                        notify.send(report, self.config.smtp, self.config.platform_name)
                        sent.append(report_id)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("report %s: mail to the moderators failed (%s)", report_id, exc)
                break  # the relay is down: the next ones would fail the same way
        pending = [r.id for r in store.pending_notifications(conn, 1000)]
        return sent, pending

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            with self._database() as conn:
                store.ping(conn)
        except _RefusedError:
            return self._json(start_response, 503, {"status": "database unavailable"})
        return self._json(start_response, 200, {"status": "ok"})

    # -- the moderation API ------------------------------------------------------------

    def _api(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, route: str
    ) -> Iterable[bytes]:
        self._authorise(environ)
        parts = route.strip("/").split("/")
        if parts == ["reports"]:
            self._allow(method, "GET")
            query = parse_qs(environ.get("QUERY_STRING", ""))
            status = (query.get("status") or ["all"])[-1]
            if status not in (*store.STATUSES, "archived", "all"):
                raise _RefusedError(
                    400, "status must be open, taken_down, dismissed, archived or all"
                )
            with self._database() as conn:
                found = store.list_reports(conn, None if status == "all" else status)
            return self._json(start_response, 200, {"reports": [r.as_json() for r in found]})
        if len(parts) in (2, 3) and parts[0] == "reports":
            report_id = parts[1]
            if not REPORT_ID.match(report_id):
                raise _RefusedError(404, f"no report {report_id}")
            if len(parts) == 2:
                self._allow(method, "GET")
                with self._database() as conn:
                    return self._json(start_response, 200, self._report(conn, report_id))
            if parts[2] == "decision":
                self._allow(method, "POST")
                return self._decide(environ, start_response, report_id)
        if parts == ["purge"]:
            # GET: how many reports a purge before ?before=YYYY-MM-DD would archive (the
            # retention plan); POST: archive those past retention_days, or before the
            # JSON {"before": "YYYY-MM-DD"} when earlier (the retention timer's date).
            if method == "GET":
                query = parse_qs(environ.get("QUERY_STRING", ""))
                before = _before((query.get("before") or [""])[-1], required=True)
                assert before is not None
                with self._database() as conn:
                    due = store.count_expired(conn, before)
                return self._json(start_response, 200, {"before": before.isoformat(), "due": due})
            self._allow(method, "POST")
            before = None
            if environ.get("CONTENT_LENGTH") not in (None, "", "0"):
                try:
                    data = json.loads(self._read_body(environ).decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    raise _RefusedError(400, "the purge body is not valid JSON") from None
                if not isinstance(data, dict) or set(data) - {"before"}:
                    raise _RefusedError(400, 'the purge body is {"before": "YYYY-MM-DD"}')
                before = _before(str(data.get("before") or ""), required=False)
            with self._database() as conn:
                result = store.archive_expired(conn, self.config.retention_days, before)
            log.info("archived %d reports created before %s", len(result.archived), result.cutoff)
            return self._json(
                start_response,
                200,
                {
                    "retention_days": self.config.retention_days,
                    "cutoff": result.cutoff.isoformat(),
                    "archived": list(result.archived),
                },
            )
        if parts == ["notify"]:
            self._allow(method, "POST")
            with self._database() as conn:
                waiting = [r.id for r in store.pending_notifications(conn, 1000)]
                sent, pending = self._notify(waiting, conn)
            return self._json(start_response, 200, {"sent": sent, "pending": pending})
        raise _RefusedError(404, "no such moderation API route")

    def _authorise(self, environ: dict[str, Any]) -> None:
        scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        presented = hashlib.sha256(token.strip().encode()).hexdigest()
        genuine = hmac.compare_digest(presented, self.config.moderation_token_sha256)
        if scheme.lower() != "bearer" or not token.strip() or not genuine:
            raise _RefusedError(
                401,
                "a moderator's bearer token is required",
                [("WWW-Authenticate", 'Bearer realm="educloud-moderation"')],
            )

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise _RefusedError(405, f"use {allowed}", [("Allow", allowed)])

    def _report(self, conn: store.Connection, report_id: str) -> dict[str, Any]:
        try:
            return store.get_report(conn, report_id).as_json()
        except store.ReportNotFoundError:
            raise _RefusedError(404, f"no report {report_id}") from None

    def _decide(
        self, environ: dict[str, Any], start_response: StartResponse, report_id: str
    ) -> Iterable[bytes]:
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != "application/json":
            raise _RefusedError(415, "send the decision as application/json")
        try:
            data = json.loads(self._read_body(environ).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _RefusedError(400, "the decision is not valid JSON") from None
        action, by, note, share_ids, reopen = _decision_fields(data)
        with self._database() as conn:
            try:
                report = store.record_decision(
                    conn, report_id, action, by, note, share_ids, reopen=reopen
                )
            except store.ReportNotFoundError:
                raise _RefusedError(404, f"no report {report_id}") from None
            except store.DecisionConflictError as conflict:
                raise _RefusedError(409, str(conflict)) from None
        log.info("report %s: %s by %s", report_id, action, visible(by))
        return self._json(start_response, 200, report.as_json())

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _database(self) -> Iterator[store.Connection]:
        """An open connection (the schema created on first use), closed afterwards;
        _RefusedError 503 when the database is down or fails."""
        try:
            conn = store.connect(self.config.database)
        except psycopg2.OperationalError as exc:
            log.error("database unavailable: %s", str(exc).strip())
            raise _RefusedError(503, _MESSAGES[503]) from None
        try:
            if not self._schema_ready:
                with self._schema_lock:
                    if not self._schema_ready:
                        store.create_schema(conn)
                        self._schema_ready = True
            yield conn
        except psycopg2.Error as exc:
            log.error("database error: %s", str(exc).strip())
            raise _RefusedError(503, _MESSAGES[503]) from None
        finally:
            conn.close()

    def _message(self, status: int) -> bytes:
        return pages.message_page(
            platform=self.config.platform_name,
            title=_TITLES[status],
            message=_MESSAGES[status],
            back=self.config.public_base_path,
        )

    @staticmethod
    def _html(
        start_response: StartResponse, status: int, body: bytes, extra: Headers | None = None
    ) -> Iterable[bytes]:
        headers = [*pages.HEADERS, ("Content-Length", str(len(body))), *(extra or [])]
        start_response(STATUS_TEXT[status], headers)
        return [body]

    @staticmethod
    def _json(
        start_response: StartResponse, status: int, data: Any, extra: Headers | None = None
    ) -> Iterable[bytes]:
        body = json.dumps(data, ensure_ascii=False).encode()
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *(extra or []),
        ]
        start_response(STATUS_TEXT[status], headers)
        return [body]


_TITLES = {
    400: "Signalement refusé",
    403: "Signalement refusé",
    404: "Page introuvable",
    405: "Méthode non autorisée",
    411: "Signalement refusé",
    413: "Signalement trop volumineux",
    429: "Trop de signalements",
    503: "Service indisponible",
}
_MESSAGES = {
    404: "Cette page n'existe pas.",
    503: "Le service est momentanément indisponible. Réessayez plus tard.",
    405: "Cette page ne s'utilise qu'avec le formulaire de signalement.",
}


def _decision_fields(data: Any) -> tuple[str, str, str, list[str], bool]:
    if not isinstance(data, dict):
        raise _RefusedError(400, "the decision must be a JSON object")
    unknown = set(data) - DECISION_KEYS
    if unknown:
        raise _RefusedError(400, f"unknown keys: {', '.join(sorted(unknown))}")
    action, by = data.get("action"), data.get("by")
    note, share_ids = data.get("note", ""), data.get("share_ids", [])
    reopen = data.get("reopen", False)
    if action not in store.ACTIONS:
        raise _RefusedError(400, "action must be takedown, dismiss or reopen")
    if not isinstance(by, str) or not by.strip() or len(by) > BY_MAX:
        raise _RefusedError(400, f"by must name who decides (1 to {BY_MAX} characters)")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise _RefusedError(400, f"note must be text of at most {NOTE_MAX} characters")
    if (
        not isinstance(share_ids, list)
        or len(share_ids) > SHARE_IDS_MAX
        or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in share_ids)
    ):
        raise _RefusedError(400, "share_ids must be a list of share ids (strings)")
    if not isinstance(reopen, bool):
        raise _RefusedError(400, "reopen must be true or false")
    if has_hidden(by + "".join(share_ids)) or has_hidden(note, allowed="\n\t"):
        raise _RefusedError(
            400, "control or format characters are not accepted (line breaks in note only)"
        )
    return action, by.strip(), note, share_ids, reopen


def _before(value: str, *, required: bool) -> datetime | None:
    """A YYYY-MM-DD date as the start of that day, UTC."""
    if not value and not required:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise _RefusedError(400, "before must be a date, YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _client_address(environ: dict[str, Any], trusted: tuple[str, ...]) -> str:
    """The peer, or behind a trusted proxy the last X-Forwarded-For hop it did not add."""
    peer = str(environ.get("REMOTE_ADDR", ""))
    if peer not in trusted:
        return peer
    hops = [h.strip() for h in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if hop in trusted:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            break  # a forged or broken entry: count the request against the proxy itself
    return peer


def client_network(address: str) -> str:
    """The network a client is counted as: an IPv4 address (/32), an IPv6 /64 (an IPv4
    address mapped into IPv6 as that IPv4 address); anything else as it is."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"{parsed.ipv4_mapped}/32"
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return f"{parsed}/32"


def _origin_of(url: str) -> str | None:
    """scheme://host[:port] of a URL, lower case, without the scheme's default port;
    None for "null" (an opaque origin) or anything that is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _typed_values(report: store.NewReport) -> dict[str, str]:
    """What the person typed, to fill the form again."""
    kind = {v: k for k, v in form.KIND_FIELD_VALUES.items()}[report.content_kind]
    return {
        "type": kind,
        "lien": report.link or "",
        "description": report.description,
        "contact": report.contact_email or "",
    }
