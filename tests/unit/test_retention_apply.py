"""Retention (C7): the plan lists exactly what is due, apply erases exactly that, and
an account is erased only after its export verifies.

The accounts here are an in-memory store behind the AccountStore protocol; the live
Keycloak is exercised by tests/integration/test_retention_lab.py. The exports are real
archives written by educloud's export code.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keycloak.exceptions import KeycloakConnectionError
from tests.doubles.nextcloud_api_double import NextcloudApiDouble

from educloud import policy
from educloud.accounts.representations import ATTR_DEPARTED
from educloud.clients.nextcloud import NextcloudClient
from educloud.portability import export
from educloud.retention import journal
from educloud.retention.rules import (
    ACCOUNTS,
    DEPARTURES,
    EXPORTS,
    Action,
    DepartedAccount,
    RetentionError,
    Stores,
    apply,
    plan,
    rules_from_policy,
)
from educloud.retention.stores import ArchiveExporter, KeycloakAccounts, ProfileOnly

RULES = rules_from_policy(policy.load().retention)
GRACE = RULES[ACCOUNTS].days
EXPORT_DAYS = RULES[EXPORTS].days
BASE = date(2026, 1, 1)


class MemoryAccounts:
    """A directory in memory (the AccountStore protocol)."""

    def __init__(self, accounts: list[DepartedAccount]) -> None:
        self.accounts = {a.username: a for a in accounts}
        self.erased: list[str] = []

    def departed_accounts(self) -> Iterator[DepartedAccount]:
        yield from list(self.accounts.values())

    def exists(self, username: str) -> bool:
        return username in self.accounts

    def erase(self, account: DepartedAccount) -> None:
        self.accounts.pop(account.username, None)
        self.erased.append(account.username)


class MemoryProfiles:
    def __init__(self, store: MemoryAccounts) -> None:
        self.store = store

    def profile(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.store.accounts:
            raise export.ExportError(f"no account {user_id}")
        return {"username": user_id, "departed_on": str(self.store.accounts[user_id].departed_on)}


def _noon(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)


def _stores(tmp: Path, accounts: MemoryAccounts) -> Stores:
    sources = export.ExportSources(MemoryProfiles(accounts), ProfileOnly())
    return Stores(
        exports_dir=tmp / "exports",
        journal_path=tmp / "journal" / "journal.jsonl",
        accounts=accounts,
        exporter=ArchiveExporter(sources),
    )


def _user_export(root: Path, name: str, written: date) -> Path:
    directory = root / "exports" / "by-request"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / export.KIND_FILE).write_text("user\n")
    archive = directory / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.json", "{}")
    stamp = datetime.combine(written, datetime.min.time(), UTC).timestamp() + 3600
    os.utime(archive, (stamp, stamp))
    return archive


accounts_strategy = st.lists(
    st.tuples(st.integers(0, 400), st.booleans()), min_size=0, max_size=12
).map(
    lambda items: [
        DepartedAccount(f"id-{i}", f"user{i}", BASE + timedelta(days=offset), enabled)
        for i, (offset, enabled) in enumerate(items)
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    accounts=accounts_strategy,
    exports=st.lists(st.integers(0, 400), max_size=6),
    clock=st.integers(0, 600),
)
def test_apply_erases_exactly_what_is_due(
    tmp_path_factory: pytest.TempPathFactory,
    accounts: list[DepartedAccount],
    exports: list[int],
    clock: int,
) -> None:
    tmp = tmp_path_factory.mktemp("retention")
    today = BASE + timedelta(days=clock)
    store = MemoryAccounts(accounts)
    archives = {
        _user_export(tmp, f"req{i}", BASE + timedelta(days=offset)): offset
        for i, offset in enumerate(exports)
    }
    stores = _stores(tmp, store)

    due_accounts = {
        a.username for a in accounts if not a.enabled and a.departed_on + timedelta(GRACE) <= today
    }
    due_exports = {
        path
        for path, offset in archives.items()
        if BASE + timedelta(days=offset + EXPORT_DAYS) <= today
    }
    found = plan(RULES, stores, today)
    assert {i.subject for i in found.due if i.category == ACCOUNTS} == due_accounts
    assert {i.path for i in found.due if i.category == EXPORTS} == due_exports
    assert all(i.action is Action.EXPORT_THEN_ERASE for i in found.due if i.category == ACCOUNTS)

    _, result = apply(RULES, stores, today, now=lambda: _noon(today))
    assert not result.failed
    assert set(store.erased) == due_accounts
    assert set(store.accounts) == {a.username for a in accounts} - due_accounts
    assert {p for p in archives if not p.exists()} == due_exports
    # Every erased account left a verified archive behind (export before erase).
    for username in due_accounts:
        archive = tmp / "exports" / DEPARTURES / f"{username}.zip"
        assert export.verify_export(archive) == []
    # Nothing is due any more on the same day, and the journal holds every action.
    assert plan(RULES, stores, today).due == []
    assert journal.verify(stores.journal_path) == []
    erased = [e["subject"] for e in journal.entries(stores.journal_path)
              if e["action"] == "account_erased"]  # fmt: skip
    assert sorted(erased) == sorted(due_accounts)


class CorruptingExporter(ArchiveExporter):
    """Writes the archive, then flips a byte of a member, as a failing disk would."""

    def export(self, account: DepartedAccount, directory: Path, now: datetime) -> Path:
        archive = super().export(account, directory, now)
        with zipfile.ZipFile(archive) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        members["profile.json"] = members["profile.json"].replace(b"user", b"uzer", 1)
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return archive


def test_a_corrupted_export_keeps_the_account(tmp_path: Path) -> None:
    account = DepartedAccount("id-1", "leaver", BASE, False)
    store = MemoryAccounts([account])
    stores = _stores(tmp_path, store)
    stores.exporter = CorruptingExporter(export.ExportSources(MemoryProfiles(store), ProfileOnly()))
    today = BASE + timedelta(days=GRACE)
    _, result = apply(RULES, stores, today)
    assert [o.item.subject for o in result.failed] == ["leaver"]
    assert "does not verify" in result.failed[0].message
    assert store.exists("leaver") and store.erased == []
    actions = [e["action"] for e in journal.entries(stores.journal_path)]
    assert actions == ["export_failed"]

    # The next run, with a sound exporter, replaces the bad archive and erases.
    stores.exporter = ArchiveExporter(export.ExportSources(MemoryProfiles(store), ProfileOnly()))
    _, result = apply(RULES, stores, today)
    assert not result.failed and store.erased == ["leaver"]


def test_a_failing_export_keeps_the_account(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def items(self, user_id: str) -> Iterator[export.ExportItem]:
            raise export.ExportError("Nextcloud refused the user's files (HTTP 503)")

    store = MemoryAccounts([DepartedAccount("id-1", "leaver", BASE, False)])
    stores = _stores(tmp_path, store)
    stores.exporter = ArchiveExporter(export.ExportSources(MemoryProfiles(store), Broken()))
    _, result = apply(RULES, stores, BASE + timedelta(days=GRACE + 3))
    assert result.failed and "HTTP 503" in result.failed[0].message
    assert store.exists("leaver")
    assert not (tmp_path / "exports" / DEPARTURES / "leaver.zip").exists()


def test_grace_period_boundary(tmp_path: Path) -> None:
    store = MemoryAccounts([DepartedAccount("id-1", "leaver", BASE, False)])
    stores = _stores(tmp_path, store)
    day_before = plan(RULES, stores, BASE + timedelta(days=GRACE - 1))
    assert day_before.due == [] and day_before.waiting == 1
    on_the_day = plan(RULES, stores, BASE + timedelta(days=GRACE))
    assert [i.subject for i in on_the_day.due] == ["leaver"]
    assert on_the_day.due[0].due_on == BASE + timedelta(days=GRACE)


def test_an_interrupted_erasure_is_recorded_on_resume(tmp_path: Path) -> None:
    account = DepartedAccount("id-1", "leaver", BASE, False)
    store = MemoryAccounts([account])
    stores = _stores(tmp_path, store)

    class DiesAfterErase(MemoryAccounts):
        pass

    def erase_then_die(acc: DepartedAccount) -> None:
        MemoryAccounts.erase(store, acc)
        raise KeyboardInterrupt  # the run is killed right after Keycloak answered

    store.erase = erase_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        apply(RULES, stores, BASE + timedelta(days=GRACE))
    actions = [e["action"] for e in journal.entries(stores.journal_path)]
    assert actions == ["export_verified", "erase_started"]

    _, result = apply(RULES, stores, BASE + timedelta(days=GRACE))
    assert result.recovered == ["leaver"] and result.outcomes == []
    entries = list(journal.entries(stores.journal_path))
    assert entries[-1]["action"] == "account_erased"
    assert entries[-1]["detail"] == {"confirmed_on_resume": True}
    assert journal.verify(stores.journal_path) == []


def _contract_end_run(tmp: Path, completed: datetime | None) -> Path:
    directory = tmp / "exports" / "contract-end-2026-06-30"
    directory.mkdir(parents=True)
    (directory / export.KIND_FILE).write_text("contract_end\n")
    for name in ("a", "b"):
        with zipfile.ZipFile(directory / f"{name}.zip", "w") as zf:
            zf.writestr("manifest.json", "{}")
    if completed:
        (directory / export.COMPLETE_FILE).write_text(
            f'{{"completed_at": "{completed.isoformat()}", "exported": 2}}'
        )
    return directory


def test_contract_end_exports_expire_as_a_whole_after_their_period(tmp_path: Path) -> None:
    completed = datetime(2026, 6, 30, 18, tzinfo=UTC)
    directory = _contract_end_run(tmp_path, completed)
    stores = Stores(exports_dir=tmp_path / "exports", journal_path=tmp_path / "j.jsonl")
    days = RULES["contract_end_exports"].days
    assert plan(RULES, stores, completed.date() + timedelta(days=days - 1)).due == []
    due_day = completed.date() + timedelta(days=days)
    found = plan(RULES, stores, due_day)
    assert [(i.category, i.count) for i in found.due] == [("contract_end_exports", 2)]
    apply(RULES, stores, due_day)
    assert not directory.exists()


def test_an_unfinished_contract_end_run_is_never_due(tmp_path: Path) -> None:
    _contract_end_run(tmp_path, None)
    stores = Stores(exports_dir=tmp_path / "exports", journal_path=tmp_path / "j.jsonl")
    assert plan(RULES, stores, date(2030, 1, 1)).due == []


def test_the_journal_is_kept_for_its_period_then_pruned(tmp_path: Path) -> None:
    store = MemoryAccounts([DepartedAccount("id-1", "leaver", BASE, False)])
    stores = _stores(tmp_path, store)
    erased_on = BASE + timedelta(days=GRACE)
    apply(
        RULES, stores, erased_on, now=lambda: datetime.combine(erased_on, datetime.min.time(), UTC)
    )
    days = RULES["retention_journal"].days

    def journal_due(day: date) -> list[tuple[str, int]]:
        found = plan(RULES, stores, day)
        return [(i.category, i.count) for i in found.due if i.category == "retention_journal"]

    assert journal_due(erased_on + timedelta(days=days)) == []
    later = erased_on + timedelta(days=days + 1)
    assert journal_due(later) == [("retention_journal", 3)]
    apply(RULES, stores, later, now=lambda: _noon(later))
    assert journal.verify(stores.journal_path) == []
    # The departed pupil's export was erased the same run: its entry is the only one left.
    assert [e["action"] for e in journal.entries(stores.journal_path)] == [
        "journal_pruned",
        "export_erased",
    ]


class KeycloakOver:
    """python-keycloak's connection as KeycloakAccounts reaches it through RealmAdmin (raw_get
    of the realm's users, raw_delete of one), over a MemoryAccounts directory: Keycloak's
    deletion is MemoryAccounts.erase."""

    realm_name = "lab"
    users_path = "admin/realms/lab/users"

    def __init__(self, directory: MemoryAccounts) -> None:
        self.directory = directory

    def raw_get(self, path: str, **query: Any) -> requests.Response:
        assert path == self.users_path, path
        users = [
            {
                "id": a.id,
                "username": a.username,
                "enabled": a.enabled,
                "attributes": {ATTR_DEPARTED: [a.departed_on.isoformat()]},
            }
            for a in self.directory.accounts.values()
            if query.get("username") in (None, a.username)
            and query.get("enabled") in (None, str(a.enabled).lower())
        ]
        first = int(query.get("first", 0))
        return _answer(200, users[first : first + int(query.get("max", len(users)))])

    def raw_delete(self, path: str, **query: Any) -> requests.Response:
        user_id = path.removeprefix(f"{self.users_path}/")
        found = [a for a in self.directory.accounts.values() if a.id == user_id]
        if not found:
            return _answer(404, {"error": "User not found"})
        self.directory.erase(found[0])
        return _answer(204, None)


def _answer(status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else json.dumps(body).encode()
    return response


def _with_nextcloud(tmp: Path, directory: MemoryAccounts, nextcloud: NextcloudClient) -> Stores:
    stores = _stores(tmp, directory)
    keycloak = SimpleNamespace(connection=KeycloakOver(directory))
    stores.accounts = KeycloakAccounts(keycloak, nextcloud)  # type: ignore[arg-type]
    return stores


def test_keycloak_refusals_are_one_line_retention_errors() -> None:
    class Refusing(KeycloakOver):
        def raw_get(self, path: str, **query: Any) -> requests.Response:
            return _answer(403, {"error": "unknown_error"})

        def raw_delete(self, path: str, **query: Any) -> requests.Response:
            return _answer(500, {"error": "boom"})

    accounts = KeycloakAccounts(SimpleNamespace(connection=Refusing(MemoryAccounts([]))))  # type: ignore[arg-type]
    with pytest.raises(
        RetentionError, match=r"refused to list the accounts \(HTTP 403\): .*manage"
    ):
        list(accounts.departed_accounts())
    with pytest.raises(RetentionError, match=r"refused to erase leaver \(HTTP 500\)"):
        accounts.erase(DepartedAccount("id-1", "leaver", BASE, False))


def test_an_unreachable_keycloak_is_a_retention_error_not_a_traceback() -> None:
    class Down(KeycloakOver):
        def raw_get(self, path: str, **query: Any) -> requests.Response:
            raise KeycloakConnectionError("Can't connect to server")

    accounts = KeycloakAccounts(SimpleNamespace(connection=Down(MemoryAccounts([]))))  # type: ignore[arg-type]
    with pytest.raises(RetentionError, match="list the accounts: Keycloak unreachable"):
        accounts.exists("leaver")


def test_an_account_keycloak_no_longer_has_is_erased_without_error() -> None:
    # Deleted by an interrupted run: Keycloak answers 404, which is not a failure.
    directory = MemoryAccounts([])
    accounts = KeycloakAccounts(SimpleNamespace(connection=KeycloakOver(directory)))  # type: ignore[arg-type]
    assert accounts.erase(DepartedAccount("id-1", "leaver", BASE, False)) is None
    assert not accounts.exists("leaver")


def test_an_account_that_never_used_nextcloud_is_erased_from_keycloak(tmp_path: Path) -> None:
    # user_oidc creates the Nextcloud account at the first login: "never" has none, and
    # Nextcloud answers its deletion OCS 998 with HTTP 200 (v1; nextcloud/server#28894).
    directory = MemoryAccounts(
        [
            DepartedAccount("id-1", "never", BASE, False),
            DepartedAccount("id-2", "used", BASE, False),
        ]
    )
    today = BASE + timedelta(days=GRACE)
    with NextcloudApiDouble() as double:
        nextcloud = NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)
        nextcloud.create_user("used", "Correct-Horse-7")

        _, result = apply(RULES, _with_nextcloud(tmp_path, directory, nextcloud), today)

        assert "used" not in double.accounts
    assert not result.failed
    outcomes = {o.item.subject: o.message for o in result.outcomes}
    assert outcomes == {
        "never": "exported and erased (no Nextcloud account: never used, or already erased)",
        "used": "exported and erased",
    }
    assert sorted(directory.erased) == ["never", "used"]  # Keycloak's deletion ran for both
    erased = {
        e["subject"]: e["detail"]
        for e in journal.entries(tmp_path / "journal" / "journal.jsonl")
        if e["action"] == "account_erased"
    }
    assert "no Nextcloud account" in erased["never"]["already_gone"]
    assert "already_gone" not in erased["used"]


def test_a_nextcloud_refusal_keeps_the_keycloak_account(tmp_path: Path) -> None:
    # Nextcloud answers 998 to a caller that may not delete the account too: that is no
    # "already gone", and the account stays in Keycloak for the next run.
    directory = MemoryAccounts([DepartedAccount("id-1", "leaver", BASE, False)])
    with NextcloudApiDouble() as double:
        admin = NextcloudClient(double.url, double.admin_user, double.admin_password, timeout=5)
        admin.create_user("leaver", "Correct-Horse-7")
        admin.create_user("helper", "Correct-Horse-8")
        helper = NextcloudClient(double.url, "helper", "Correct-Horse-8", timeout=5)

        stores = _with_nextcloud(tmp_path, directory, helper)
        _, result = apply(RULES, stores, BASE + timedelta(days=GRACE))

        assert "leaver" in double.accounts
    assert [o.item.subject for o in result.failed] == ["leaver"]
    assert "administrator is needed" in result.failed[0].message
    assert directory.exists("leaver") and directory.erased == []
