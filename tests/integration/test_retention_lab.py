"""Retention against the lab's live Keycloak (C7): exactly the accounts past their grace
period are exported then erased, a bad export keeps the account, the journal holds every
action and detects an edited line."""

from __future__ import annotations

import json
import secrets
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.doubles.nextcloud_api_double import Account, NextcloudApiDouble
from tests.doubles.occ_double import OccDouble
from tests.integration.educloud_cli import run_educloud

from educloud import policy
from educloud.clients.nextcloud import NextcloudClient
from educloud.portability import export
from educloud.portability.sources import StaticCredentials, WebDavContent, nextcloud_content
from educloud.retention import journal
from educloud.retention.rules import (
    ACCOUNTS,
    DEPARTURES,
    DepartedAccount,
    Stores,
    apply,
    plan,
    rules_from_policy,
)
from educloud.retention.stores import ArchiveExporter, KeycloakAccounts, ProfileOnly

pytestmark = pytest.mark.lab

RULES = rules_from_policy(policy.load().retention)
GRACE = RULES[ACCOUNTS].days
TODAY = date(2026, 9, 1)


def _departed_user(kc_admin, username: str, departed: date | None, *, enabled: bool) -> str:
    attributes = {"educloud_profile": ["pupil"], "educloud_login": ["local"]}
    if departed:
        attributes["educloud_departed_on"] = [departed.isoformat()]
    return kc_admin.create_user(
        {
            "username": username,
            "firstName": "Élève",
            "lastName": "Parti",
            "enabled": enabled,
            "attributes": attributes,
        }
    )


def _stores(kc_admin, tmp: Path) -> Stores:
    profiles = export.KeycloakProfiles(kc_admin, kc_admin.connection.realm_name)
    return Stores(
        exports_dir=tmp / "exports",
        journal_path=tmp / "journal.jsonl",
        accounts=KeycloakAccounts(kc_admin),
        exporter=ArchiveExporter(export.ExportSources(profiles, ProfileOnly())),
    )


@pytest.fixture
def realm_admin(kc_admin, lab_keycloak, scratch_realm) -> Iterator[object]:
    """The session's admin client on the scratch realm, given back on the lab realm."""
    kc_admin.change_current_realm(scratch_realm)
    try:
        yield kc_admin
    finally:
        kc_admin.change_current_realm(lab_keycloak.realm)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 200)), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    clock=st.integers(0, 300),
)
def test_apply_erases_exactly_the_accounts_due(
    realm_admin, tmp_path_factory, people: list[tuple[int | None, bool]], clock: int
) -> None:
    kc = realm_admin
    tmp = tmp_path_factory.mktemp("retention")
    base = TODAY - timedelta(days=200)
    today = base + timedelta(days=clock)
    tag = secrets.token_hex(3)
    made = {}
    for n, (offset, enabled) in enumerate(people):
        departed = base + timedelta(days=offset) if offset is not None else None
        username = f"r{tag}e{n}"
        made[username] = (
            _departed_user(kc, username, departed, enabled=enabled),
            departed,
            enabled,
        )
    due = {
        name
        for name, (_id, departed, enabled) in made.items()
        if departed is not None and not enabled and departed + timedelta(GRACE) <= today
    }
    stores = _stores(kc, tmp)
    try:
        found = plan(RULES, stores, today)
        assert {i.subject for i in found.due if i.category == ACCOUNTS} >= due
        mine = {i.subject for i in found.due if i.subject.startswith(f"r{tag}")}
        assert mine == due

        noon = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=12)
        _, result = apply(RULES, stores, today, now=lambda: noon)
        assert not result.failed, [o.message for o in result.failed]
        remaining = {u["username"] for u in kc.get_users({"search": f"r{tag}"})}
        assert remaining == set(made) - due
        for username in due:
            archive = tmp / "exports" / DEPARTURES / f"{username}.zip"
            assert export.verify_export(archive) == []
            with zipfile.ZipFile(archive) as zf:
                profile = json.loads(zf.read("profile.json"))
            assert profile["username"] == username
        assert journal.verify(stores.journal_path) == []
        assert [i for i in plan(RULES, stores, today).due if i.subject.startswith(f"r{tag}")] == []
    finally:
        for user in kc.get_users({"search": f"r{tag}"}):
            kc.delete_user(user["id"])


def test_a_corrupted_export_keeps_the_account_in_keycloak(realm_admin, tmp_path) -> None:
    kc = realm_admin
    username = f"corrupt{secrets.token_hex(3)}"
    _departed_user(kc, username, TODAY - timedelta(days=GRACE + 1), enabled=False)

    class CorruptingExporter(ArchiveExporter):
        def export(self, account: DepartedAccount, directory: Path, now: datetime) -> Path:
            archive = super().export(account, directory, now)
            data = bytearray(archive.read_bytes())
            data[len(data) // 3] ^= 0xFF  # one flipped byte inside the archive
            archive.write_bytes(bytes(data))
            return archive

    stores = _stores(kc, tmp_path)
    assert stores.exporter is not None
    stores.exporter = CorruptingExporter(stores.exporter.sources)  # type: ignore[attr-defined]
    _, result = apply(RULES, stores, TODAY)
    mine = [o for o in result.outcomes if o.item.subject == username]
    assert len(mine) == 1 and not mine[0].done
    assert "account kept" in mine[0].message
    assert kc.get_users({"username": username, "exact": True}), "the account was erased"
    failed = [e for e in journal.entries(stores.journal_path) if e["subject"] == username]
    assert [e["action"] for e in failed] == ["export_failed"]


def _educloud(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_educloud("retention", *args, env=env)


def test_cli_plans_applies_and_journals_through_the_data_rights_client(
    kc_admin, lab_keycloak, tmp_path
) -> None:
    """On the lab realm, with the realm's own service client (educloud-data-rights)."""
    kc_admin.change_current_realm(lab_keycloak.realm)
    username = f"cli{secrets.token_hex(3)}"
    _departed_user(kc_admin, username, TODAY - timedelta(days=GRACE), enabled=False)
    where = [
        "--inventory",
        "inventories/lab",
        "--exports-dir",
        str(tmp_path / "exports"),
        "--journal",
        str(tmp_path / "journal.jsonl"),
        "--today",
        TODAY.isoformat(),
    ]
    try:
        planned = _educloud("plan", *where, "--json")
        assert planned.returncode == 0, planned.stderr
        document = json.loads(planned.stdout)
        assert username in {d["subject"] for d in document["due"]}
        # One line per realm and category; master's (read through the lab realm's service
        # client, which may not read master) are proven or not by `educloud verify`.
        events = {
            e["category"]: e["ok"]
            for e in document["enforced_elsewhere"]
            if str(e.get("status", "")).startswith("realm lab:")
        }
        assert events["login_events"] is True and events["admin_events"] is True, document

        applied = _educloud("apply", *where)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"done accounts {username}: exported and erased" in applied.stdout
        assert not kc_admin.get_users({"username": username, "exact": True})
        archive = tmp_path / "exports" / DEPARTURES / f"{username}.zip"
        assert export.verify_export(archive) == []

        verified = _educloud("journal", "verify", str(tmp_path / "journal.jsonl"))
        assert verified.returncode == 0 and "chain intact" in verified.stdout

        # An edited line (the erased account's name changed) is detected.
        path = tmp_path / "journal.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        lines[-1] = lines[-1].replace(username, "someone-else")
        path.write_text("".join(lines), encoding="utf-8")
        tampered = _educloud("journal", "verify", str(path))
        assert tampered.returncode == 1
        assert "edited" in tampered.stderr
    finally:
        for user in kc_admin.get_users({"username": username, "exact": True}):
            kc_admin.delete_user(user["id"])


def test_cli_refuses_a_wrong_secret_in_one_line(tmp_path) -> None:
    result = _educloud(
        "plan",
        "--exports-dir",
        str(tmp_path),
        "--journal",
        str(tmp_path / "j.jsonl"),
        env={"EDUCLOUD_DATA_RIGHTS_CLIENT_SECRET": "not-the-secret"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "check its client secret" in " ".join(result.stderr.split())
    assert "not-the-secret" not in result.stderr + result.stdout


@pytest.fixture
def nextcloud_double() -> Iterator[NextcloudApiDouble]:
    with NextcloudApiDouble() as server:
        yield server


def test_a_departed_accounts_files_are_exported_before_both_accounts_are_erased(
    realm_admin, nextcloud_double, tmp_path
) -> None:
    """Keycloak is the lab's; Nextcloud and occ are doubles (Nextcloud not installed)."""
    kc = realm_admin
    leaver, stayer = f"nc{secrets.token_hex(3)}", f"nc{secrets.token_hex(3)}"
    for username, departed in ((leaver, TODAY - timedelta(days=GRACE)), (stayer, TODAY)):
        _departed_user(kc, username, departed, enabled=False)
        nextcloud_double.accounts[username] = Account(secrets.token_hex(8), username)
    nextcloud_double.put_file(leaver, "Devoirs/exposé.odt", b"PK\x03\x04 expose")
    (tmp_path / "nextcloud-host").mkdir()
    occ = OccDouble(nextcloud_double, tmp_path / "nextcloud-host")
    admin = NextcloudClient(nextcloud_double.url, "admin", nextcloud_double.admin_password)
    stores = _stores(kc, tmp_path)
    stores.accounts = KeycloakAccounts(kc, admin)
    content = nextcloud_content(occ, nextcloud_double.url)
    profiles = export.KeycloakProfiles(kc, kc.connection.realm_name)
    stores.exporter = ArchiveExporter(export.ExportSources(profiles, content))

    _, result = apply(RULES, stores, TODAY)
    assert not result.failed, [o.message for o in result.failed]
    archive = tmp_path / "exports" / DEPARTURES / f"{leaver}.zip"
    assert export.verify_export(archive) == []
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("files/Devoirs/exposé.odt") == b"PK\x03\x04 expose"
    assert leaver not in nextcloud_double.accounts and stayer in nextcloud_double.accounts
    assert not kc.get_users({"username": leaver, "exact": True})
    assert kc.get_users({"username": stayer, "exact": True})


def test_when_nextcloud_refuses_the_export_both_accounts_stay(
    realm_admin, nextcloud_double, tmp_path
) -> None:
    kc = realm_admin
    leaver = f"nc{secrets.token_hex(3)}"
    _departed_user(kc, leaver, TODAY - timedelta(days=GRACE), enabled=False)
    nextcloud_double.accounts[leaver] = Account(secrets.token_hex(8), leaver)
    nextcloud_double.put_file(leaver, "a.txt", b"a")
    admin = NextcloudClient(nextcloud_double.url, "admin", nextcloud_double.admin_password)
    stores = _stores(kc, tmp_path)
    stores.accounts = KeycloakAccounts(kc, admin)
    # Nextcloud refuses the user's files (a wrong app password: HTTP 401).
    wrong = StaticCredentials({leaver: "not-the-app-password"})
    profiles = export.KeycloakProfiles(kc, kc.connection.realm_name)
    content = WebDavContent(nextcloud_double.url, wrong, timeout=10)
    stores.exporter = ArchiveExporter(export.ExportSources(profiles, content))

    _, result = apply(RULES, stores, TODAY)
    assert [o.item.subject for o in result.failed] == [leaver]
    assert leaver in nextcloud_double.accounts
    assert kc.get_users({"username": leaver, "exact": True})
