"""The deployment's stores as retention sees them: Keycloak's accounts and events,
Nextcloud's users, and the categories other components enforce by themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from keycloak import KeycloakAdmin

from educloud.accounts.representations import ATTR_DEPARTED
from educloud.backup import status as backup_status
from educloud.backup.status import StatusReader
from educloud.clients.keycloak import EventKind, KeycloakAdminError, RealmAdmin
from educloud.clients.nextcloud import NextcloudClient, NextcloudNoSuchAccountError
from educloud.errors import EducloudError
from educloud.portability import export
from educloud.retention.rules import (
    DepartedAccount,
    Enforced,
    RetentionError,
    Rule,
)


def _first(attributes: dict[str, Any] | None, name: str) -> str | None:
    values = (attributes or {}).get(name) or []
    return str(values[0]) if values else None


class KeycloakAccounts:
    """Departed accounts of a realm (attribute educloud_departed_on), erased with their
    Nextcloud account when a Nextcloud client is given. `admin` is the logged-in client
    (connect_admin); the realm, the one it addresses unless `realm` names another."""

    def __init__(
        self,
        admin: KeycloakAdmin,
        nextcloud: NextcloudClient | None = None,
        *,
        realm: str | None = None,
    ) -> None:
        self.realm = RealmAdmin(admin, realm or str(admin.connection.realm_name))
        self.nextcloud = nextcloud

    def departed_accounts(self) -> Iterator[DepartedAccount]:
        # Only disabled accounts can be departed; the filter keeps the pages small.
        for user in self._users(enabled="false", briefRepresentation="false"):
            departed = _first(user.get("attributes"), ATTR_DEPARTED)
            if not departed:
                continue
            try:
                departed_on = date.fromisoformat(departed)
            except ValueError:
                raise RetentionError(
                    f"account {user.get('username')}: {ATTR_DEPARTED}={departed!r} is not "
                    "a date YYYY-MM-DD (edited by hand?): correct it, then run again"
                ) from None
            yield DepartedAccount(
                str(user["id"]),
                str(user["username"]),
                departed_on,
                bool(user.get("enabled", False)),
            )

    def _users(self, **query: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from self.realm.users("list the accounts", **query)
        except KeycloakAdminError as exc:
            if exc.status is None:  # unreachable, or no JSON: the error says which
                raise RetentionError(str(exc)) from None
            raise RetentionError(
                f"Keycloak refused to list the accounts (HTTP {exc.status}): the "
                "service client needs manage-users"
            ) from None

    def exists(self, username: str) -> bool:
        return any(True for _ in self._users(username=username, exact="true"))

    def erase(self, account: DepartedAccount) -> str | None:
        gone = None
        if self.nextcloud is not None:
            try:
                self.nextcloud.delete_user(account.username)
            except NextcloudNoSuchAccountError:
                # user_oidc creates the Nextcloud account at the first login: an account
                # that never opened Nextcloud has none (or an earlier run erased it).
                gone = "no Nextcloud account: never used, or already erased"
        try:
            # False (Keycloak has no such account): erased by an interrupted run.
            self.realm.delete_user(account.id, f"erase {account.username}")
        except KeycloakAdminError as exc:
            if exc.status is None:
                raise RetentionError(str(exc)) from None
            raise RetentionError(
                f"Keycloak refused to erase {account.username} (HTTP {exc.status})"
            ) from None
        return gone


EVENTS: dict[str, EventKind] = {"login_events": "events", "admin_events": "admin-events"}


@dataclass
class KeycloakEventsCheck:
    """Keycloak expires login and admin events itself (the keycloak role sets every realm's
    eventsExpiration and adminEventsExpiration from retention.yml, master's included). The
    check compares each realm's settings with the policy and looks for events older than
    the policy; a realm it cannot read leaves its categories unproven.

    `realms` are the realms to check; `realm_admin` gives a realm's admin API (and raises
    KeycloakAdminError when it cannot sign in there)."""

    realms: Sequence[str]
    realm_admin: Callable[[str], RealmAdmin]

    def __call__(self, rules: dict[str, Rule], today: date) -> Iterable[Enforced]:
        categories = [category for category in EVENTS if category in rules]
        if not categories:
            return
        for name in self.realms:
            yield from self._realm(name, {c: rules[c] for c in categories}, today)

    def _realm(self, name: str, rules: dict[str, Rule], today: date) -> Iterator[Enforced]:
        try:
            realm = self.realm_admin(name)
            settings = realm.settings()
        except KeycloakAdminError as exc:
            why = (
                "HTTP 403: the service client holds no view-realm or manage-realm role on "
                "this realm"
                if exc.status == 403
                else str(exc)
            )
            for category in rules:
                status = f"realm {name}: settings unreadable ({why})"
                yield Enforced(category, "keycloak", status, None)
            return
        configured_seconds = {
            "login_events": settings.get("eventsExpiration"),
            "admin_events": (settings.get("attributes") or {}).get("adminEventsExpiration"),
        }
        for category, rule in rules.items():
            endpoint = EVENTS[category]
            expected = rule.days * 86400
            seconds = configured_seconds[category]
            try:
                configured = int(seconds) if seconds not in (None, "") else None
            except (TypeError, ValueError):
                configured = None
            old = _older_than(realm, endpoint, today - rule.period - timedelta(days=1))
            ok: bool | None
            if configured != expected:
                kept = f"{configured} s" if configured else "forever"
                status = (
                    f"Keycloak keeps them {kept}, the policy {rule.days} days "
                    f"({expected} s): converge the keycloak role"
                )
                ok = False
            elif old is None:
                # Unread is not "none found": the category stays unproven.
                status = (
                    f"expiry set ({rule.days} days) but the stored {endpoint} could not be "
                    "read: the service client needs view-events"
                )
                ok = None
            elif old:
                status = f"expiry set ({rule.days} days) but events older than that remain"
                ok = False
            else:
                status = f"expired by Keycloak after {rule.days} days; none older found"
                ok = True
            yield Enforced(category, "keycloak", f"realm {name}: {status}", ok)


def _older_than(realm: RealmAdmin, endpoint: EventKind, before: date) -> int | None:
    """How many stored events (at most one is asked) are dated before `before`; None when
    Keycloak did not answer with a listing (refused, unreachable, not JSON)."""
    try:
        listing = realm.event_page(endpoint, dateTo=before.isoformat(), first=0, max=1)
    except KeycloakAdminError:
        return None
    return len(listing)


BACKUPS = "backups"


@dataclass
class BackupsCheck:
    """Backups (C7): the backup agent's restic forget --keep-within-* drops every snapshot
    past the policy at each run. The check reads each backup host's status file and
    reports its snapshots, the oldest, and those past the period (due at the next forget);
    one older than the period plus a day means forget is not running: not ok."""

    hosts: Callable[[], list[tuple[str, StatusReader]]]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __call__(self, rules: dict[str, Rule], today: date) -> Iterable[Enforced]:
        if BACKUPS not in rules:
            return
        rule = rules[BACKUPS]
        now = self.clock()
        if today != now.date():  # planning for another day: that day, at this time
            now = datetime.combine(today, now.timetz())
        try:
            readers = self.hosts()
        except EducloudError as exc:
            yield Enforced(BACKUPS, rule.enforced_by, f"backup hosts unknown: {exc}", None)
            return
        if not readers:
            yield Enforced(BACKUPS, rule.enforced_by, "no backup host in this deployment", None)
        for name, read in readers:
            try:
                status = read()
            except EducloudError as exc:
                yield Enforced(BACKUPS, rule.enforced_by, f"{name}: {exc}", None)
                continue
            if status is None:
                yield Enforced(BACKUPS, rule.enforced_by, f"{name}: no backup run yet", False)
                continue
            found = backup_status.review(status, rule.days, now)
            yield Enforced(BACKUPS, rule.enforced_by, found.summary(), found.ok)


def delegated_categories(
    rules: dict[str, Rule], *, nextcloud: bool, backups_checked: bool = False
) -> list[Enforced]:
    """Categories enforced on the hosts by the roles, verified by `educloud verify`;
    backups by BackupsCheck when the deployment's backup hosts are known."""
    hosts = {
        "system_logs": "journald MaxRetentionSec (common role); checked by educloud verify",
        "web_logs": "logrotate maxage (common role); checked by educloud verify",
        "deleted_files": "Nextcloud trashbin_retention_obligation (nextcloud role)",
        "file_versions": "Nextcloud versions_retention_obligation (nextcloud role)",
        "activity": "Nextcloud activity_expire_days (nextcloud role)",
        "files": "erased with the account (Nextcloud user deletion)",
        "backups": "the backup tool's forget and prune (backup role)",
    }
    found = []
    for category, how in hosts.items():
        if category not in rules:
            continue
        rule = rules[category]
        if category == BACKUPS:
            if not backups_checked:
                found.append(
                    Enforced(category, rule.enforced_by, f"{how}: no backup status here", None)
                )
        elif rule.enforced_by == "nextcloud" and not nextcloud:
            found.append(
                Enforced(category, rule.enforced_by, f"{how}: Nextcloud not installed", None)
            )
        else:
            found.append(Enforced(category, rule.enforced_by, how, None))
    return found


class ArchiveExporter:
    """Retention's exporter: `educloud export`'s own code, one departed account at a time
    (an archive that exists and verifies is reused; a torn one is redone)."""

    def __init__(self, sources: export.ExportSources) -> None:
        self.sources = sources

    def export(self, account: DepartedAccount, directory: Path, now: datetime) -> Path:
        run = export.export_many(self.sources, [account.username], directory, now=now)
        if account.username in run.failed:
            raise export.ExportError(run.failed[account.username])
        return export.archive_path(run.directory, account.username)

    def verify(self, archive: Path) -> list[str]:
        return export.verify_export(archive)


class ProfileOnly:
    """No Nextcloud here: the export holds the profile alone, and says so by its source."""

    name = "profile-only"

    def items(self, user_id: str) -> Iterator[export.ExportItem]:
        return iter(())
