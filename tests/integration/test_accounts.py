"""`educloud accounts` against the lab's live Keycloak: apply, idempotence, rollover, departure,
resume after a kill, and the CLI through the realm's service client.

Most tests work in a scratch realm of their own (a copy of the lab realm's user profile, so
the same attributes are declared and refused): an apply disables every managed account that
its file does not list, which must not reach other tests' accounts.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from tests.integration.educloud_cli import run_educloud

from educloud.accounts import keycloak_directory
from educloud.accounts.keycloak_directory import ImportPath, KeycloakDirectory
from educloud.accounts.model import CANONICAL_FIELDS, class_group, school_group
from educloud.accounts.plan import ChangeKind
from educloud.accounts.policy import load_policy
from educloud.accounts.sync import InvalidFileError, apply_file, make_plan

pytestmark = pytest.mark.lab

TODAY = date(2026, 11, 26)
YEAR = 2026
UAI = "0750001U"
OTHER_UAI = "0690002C"
CHILD = Path(__file__).with_name("accounts_apply_child.py")


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(CANONICAL_FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({field: row.get(field, "") for field in CANONICAL_FIELDS})
    return path


def pupil(n: int, label: str, uai: str = UAI, **extra: str) -> dict[str, str]:
    return {
        "id": f"eleve{n:04d}",
        "given_name": "Léa",
        "family_name": f"Élève {n}",
        "email": f"eleve{n}@example.test",  # dropped at read time (C4)
        "profile": "pupil",
        "uai": uai,
        "classes": label,
        **extra,
    }


def teacher(n: int, labels: str, uai: str = UAI) -> dict[str, str]:
    return {
        "id": f"prof{n:03d}",
        "given_name": "Jean",
        "family_name": f"Professeur {n}",
        "email": f"prof{n}@example.test",
        "profile": "teacher",
        "uai": uai,
        "classes": labels,
        "groups": "Équipe maths",
    }


@pytest.fixture
def directory(kc_admin, scratch_realm) -> KeycloakDirectory:
    return KeycloakDirectory(kc_admin, scratch_realm)


def apply(directory, file: Path, state_dir: Path, *, today: date = TODAY, year: int = YEAR):
    return apply_file(
        file,
        mapping="canonical",
        encoding=None,
        policy=load_policy(),
        directory=directory,
        state_dir=state_dir,
        login_url="https://cloud.educloud.test",
        today=today,
        year=year,
    )


def report_of(directory, file: Path, *, today: date = TODAY, year: int = YEAR):
    return make_plan(
        file,
        mapping="canonical",
        encoding=None,
        policy=load_policy(),
        directory=directory,
        today=today,
        year=year,
    )


def plan_of(directory, file: Path, *, today: date = TODAY, year: int = YEAR):
    report = report_of(directory, file, today=today, year=year)
    assert report.plan is not None, report.problems
    return report.plan


def users_by_name(kc_admin, realm: str) -> dict[str, dict]:
    users = kc_admin.connection.raw_get(
        f"admin/realms/{realm}/users", briefRepresentation="false", max=2000
    ).json()
    return {u["username"]: u for u in users}


def groups_of(kc_admin, realm: str, user_id: str) -> set[str]:
    groups = kc_admin.connection.raw_get(f"admin/realms/{realm}/users/{user_id}/groups").json()
    return {g["name"] for g in groups}


def group_named(kc_admin, realm: str, name: str) -> dict:
    found = kc_admin.connection.raw_get(
        f"admin/realms/{realm}/groups", search=name, exact="true", briefRepresentation="false"
    ).json()
    assert len(found) == 1, found
    return found[0]


def sheet_passwords(sheets: list[Path]) -> dict[str, str]:
    """Login -> password, read back from the printed sheets."""
    found: dict[str, str] = {}
    for sheet in sheets:
        if sheet.suffix != ".html" or sheet.name == "index.html":
            continue
        secrets_ = re.findall(r'<span class="secret">([^<]*)</span>', sheet.read_text())
        for login, password in zip(secrets_[0::2], secrets_[1::2], strict=True):
            assert html.unescape(login) not in found, f"{login} on two slips"
            found[html.unescape(login)] = html.unescape(password)
    return found


def try_password(lab_keycloak, realm: str, username: str, password: str) -> str:
    """Keycloak's answer to a direct grant: 'Account is not fully set up' proves the password
    right and its change at first login required."""
    # Through the admin site: a scratch realm is not on the public name, which serves only
    # the inventory's realms (reverse_proxy allow_paths, issue #29).
    answer = requests.post(
        f"{lab_keycloak.admin_url}/realms/{realm}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "try-password",
            "username": username,
            "password": password,
        },
        verify=lab_keycloak.ca_file,
        timeout=60,
    )
    return str(answer.json().get("error_description"))


def test_apply_creates_groups_and_accounts_and_a_second_apply_changes_nothing(
    kc_admin, scratch_realm, directory, lab_keycloak, tmp_path
):
    file = write_csv(
        tmp_path / "annuaire.csv",
        [pupil(1, "3A"), pupil(2, "3A"), pupil(3, "3B"), teacher(1, "3A|3B")],
    )
    first = apply(directory, file, tmp_path / "state")

    users = users_by_name(kc_admin, scratch_realm)
    assert set(users) == {"eleve0001", "eleve0002", "eleve0003", "prof001"}
    assert users["eleve0001"]["attributes"]["educloud_profile"] == ["pupil"]
    assert "email" not in users["eleve0001"]  # a pupil's e-mail is dropped at read time (C4)
    assert users["prof001"]["email"] == "prof1@example.test"
    assert groups_of(kc_admin, scratch_realm, users["prof001"]["id"]) == {
        school_group(UAI),
        class_group(UAI, YEAR, "3A"),
        class_group(UAI, YEAR, "3B"),
        f"groupe-{UAI.lower()}-equipe-maths",
    }
    klass = group_named(kc_admin, scratch_realm, class_group(UAI, YEAR, "3A"))
    assert klass["attributes"]["educloud_label"] == ["3A"]
    assert klass["attributes"]["educloud_year"] == [str(YEAR)]

    passwords = sheet_passwords(first.sheets)
    assert set(passwords) == {"eleve0001", "eleve0002", "eleve0003"}  # pupils only, local login
    assert not (tmp_path / "state" / "pending-credentials.jsonl").exists()
    answer = try_password(lab_keycloak, scratch_realm, "eleve0001", passwords["eleve0001"])
    assert answer == "Account is not fully set up"
    wrong = try_password(lab_keycloak, scratch_realm, "eleve0001", passwords["eleve0002"])
    assert wrong == "Invalid user credentials"

    second = apply(directory, file, tmp_path / "state")
    assert second.result.applied == {}
    assert second.sheets == []
    assert plan_of(directory, file).applicable == ()


@pytest.mark.parametrize("provider", [True, False], ids=["bulk-import-provider", "without-it"])
def test_batched_creations_through_the_bulk_import_provider_or_without_it(
    kc_admin, scratch_realm, directory, tmp_path, monkeypatch, provider
):
    """From 20 creations accounts go in batches to the lab Keycloak's bulk import provider.
    A Keycloak without it answers 404 there: the same batches then go to the standard
    partial import, with a notice, and reach the same state."""
    if not provider:
        monkeypatch.setattr(
            keycloak_directory, "BULK_IMPORT", "educloud-bulk-import/no-such-endpoint"
        )
    rows = [pupil(n, "3A" if n % 2 else "3B") for n in range(1, 46)]
    file = write_csv(tmp_path / "annuaire.csv", rows)
    first = apply(directory, file, tmp_path / "state")

    assert first.result.applied[ChangeKind.CREATE_ACCOUNT] == 45
    users = users_by_name(kc_admin, scratch_realm)
    assert len(users) == 45
    assert groups_of(kc_admin, scratch_realm, users["eleve0001"]["id"]) == {
        school_group(UAI),
        class_group(UAI, YEAR, "3A"),
    }
    assert groups_of(kc_admin, scratch_realm, users["eleve0044"]["id"]) == {
        school_group(UAI),
        class_group(UAI, YEAR, "3B"),
    }
    assert directory.bulk_provider is provider
    notices = [n for n in directory.notices if "no educloud-bulk-import provider" in n]
    assert len(notices) == (0 if provider else 1)
    assert apply(directory, file, tmp_path / "state").result.applied == {}


def test_rollover_moves_pupils_and_archives_last_years_classes(
    kc_admin, scratch_realm, directory, tmp_path
):
    last = write_csv(tmp_path / "2025.csv", [pupil(1, "5A"), pupil(2, "5A"), teacher(1, "5A")])
    apply(directory, last, tmp_path / "state", year=YEAR - 1, today=TODAY - timedelta(days=365))
    new = write_csv(tmp_path / "2026.csv", [pupil(1, "4A"), pupil(2, "4B"), teacher(1, "4A|4B")])

    changes = plan_of(directory, new)
    counts = changes.counts()
    assert counts[ChangeKind.CREATE_GROUP] == 2
    assert counts[ChangeKind.ARCHIVE_GROUP] == 1
    assert counts[ChangeKind.MOVE_ACCOUNT] == 3
    assert counts[ChangeKind.CREATE_ACCOUNT] == 0
    apply(directory, new, tmp_path / "state")

    users = users_by_name(kc_admin, scratch_realm)
    assert groups_of(kc_admin, scratch_realm, users["eleve0002"]["id"]) == {
        school_group(UAI),
        class_group(UAI, YEAR, "4B"),
    }
    archived = group_named(kc_admin, scratch_realm, class_group(UAI, YEAR - 1, "5A"))
    assert archived["attributes"]["educloud_archived_on"] == [TODAY.isoformat()]
    assert plan_of(directory, new).applicable == ()


def test_departure_disables_at_once_and_is_due_after_the_grace_period(
    kc_admin, scratch_realm, directory, tmp_path
):
    both = write_csv(tmp_path / "before.csv", [pupil(1, "3A"), pupil(2, "3A")])
    apply(directory, both, tmp_path / "state")
    ended = TODAY - timedelta(days=3)
    after = write_csv(tmp_path / "after.csv", [pupil(1, "3A", end_date=ended.isoformat())])

    changes = plan_of(directory, after)
    due = {c.target: c.due_on for c in changes.of_kind(ChangeKind.DISABLE_ACCOUNT)}
    grace = timedelta(days=load_policy().grace_days)
    assert due == {"eleve0001": ended + grace, "eleve0002": TODAY + grace}
    apply(directory, after, tmp_path / "state")

    users = users_by_name(kc_admin, scratch_realm)
    assert not users["eleve0001"]["enabled"] and not users["eleve0002"]["enabled"]
    assert users["eleve0002"]["attributes"]["educloud_departed_on"] == [TODAY.isoformat()]
    later = plan_of(directory, after, today=TODAY + grace)
    assert {c.target for c in later.of_kind(ChangeKind.DUE_FOR_DELETION)} == {
        "eleve0001",
        "eleve0002",
    }
    assert later.applicable == ()


def _run_child(settings: dict, *, kill_when=None) -> int:
    child = subprocess.Popen(
        [sys.executable, str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps(settings).encode())
    child.stdin.close()
    deadline = time.monotonic() + 600
    while child.poll() is None and time.monotonic() < deadline:
        if kill_when is not None and kill_when():
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return -9
        time.sleep(0.2)
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
        pytest.fail("the apply did not end within 10 minutes")
    assert child.returncode == 0, child.stderr.read().decode()[-2000:] if child.stderr else ""
    return child.returncode


def test_apply_killed_in_the_middle_resumes_to_the_same_state(
    kc_admin, scratch_realm, lab_keycloak, tmp_path
):
    count = 300
    rows = [pupil(n, f"6{'ABCDEFGHIJ'[n % 10]}") for n in range(count)]
    file = write_csv(tmp_path / "annuaire.csv", rows)
    state_dir = tmp_path / "state"
    settings = {
        "pins": {
            lab_keycloak.admin_url.split("//")[1]: lab_keycloak.proxy_address,
            lab_keycloak.public_url.split("//")[1]: lab_keycloak.proxy_address,
        },
        "admin_url": lab_keycloak.admin_url,
        "automation_client_id": lab_keycloak.automation_client_id,
        "automation_client_secret": lab_keycloak.automation_client_secret,
        "ca_file": lab_keycloak.ca_file,
        "realm": scratch_realm,
        "file": str(file),
        "state_dir": str(state_dir),
        "today": TODAY.isoformat(),
        "year": YEAR,
        "path": str(ImportPath.BATCHED),
        "batch_size": 20,
    }
    users_url = f"admin/realms/{scratch_realm}/users/count"

    def some_created() -> bool:
        return int(kc_admin.connection.raw_get(users_url).text) >= 60

    assert _run_child(settings, kill_when=some_created) == -9, "the apply ended before the kill"
    created_before = int(kc_admin.connection.raw_get(users_url).text)
    assert 60 <= created_before < count, created_before
    journal = state_dir / "pending-credentials.jsonl"
    assert journal.exists() and journal.stat().st_mode & 0o777 == 0o600

    _run_child(settings)

    users = users_by_name(kc_admin, scratch_realm)
    assert sorted(users) == sorted(r["id"] for r in rows)  # none lost, none twice
    for row in rows[:: count // 10]:
        assert groups_of(kc_admin, scratch_realm, users[row["id"]]["id"]) == {
            school_group(UAI),
            class_group(UAI, YEAR, row["classes"]),
        }
    sheets = sorted((state_dir / "sheets").rglob("*.html"))
    passwords = sheet_passwords(sheets)
    assert set(passwords) == set(users)  # the killed run's accounts are on the sheets too
    early = min(users, key=lambda name: users[name]["createdTimestamp"])
    assert try_password(lab_keycloak, scratch_realm, early, passwords[early]) == (
        "Account is not fully set up"
    )
    assert not journal.exists()
    directory = KeycloakDirectory(kc_admin, scratch_realm)
    assert plan_of(directory, file).applicable == ()


def _educloud(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_educloud("accounts", *args, env=env)


def _cleanup_lab_realm(kc_admin, lab_keycloak, tag: str, uai: str) -> None:
    """Remove the test's accounts and every group of its school from the lab realm."""
    kc_admin.change_current_realm(lab_keycloak.realm)
    for user in kc_admin.get_users({"search": tag}):
        kc_admin.delete_user(user["id"])
    for group in kc_admin.get_groups({"search": uai.lower()}):
        if uai.lower() in group["name"]:
            kc_admin.delete_group(group["id"])


@pytest.mark.parametrize(
    ("client_id", "notice"),
    [
        # The daily client holds manage-users only: partial import is refused, and the
        # tool falls back to one request per account, saying so.
        ("educloud-accounts", "may not use partial import"),
        # The bulk client (bulk_import: true, manage-realm) takes the batched path.
        ("educloud-accounts-bulk", None),
    ],
)
def test_cli_applies_through_the_realms_service_clients(
    kc_admin, lab_keycloak, tmp_path, client_id, notice
):
    tag = f"cli{secrets.token_hex(2)}"
    rows = [pupil(n, "CM2", uai=OTHER_UAI, id=f"{tag}e{n}") for n in range(24)]
    rows.append({**teacher(1, "CM2", uai=OTHER_UAI), "id": f"{tag}p"})
    file = write_csv(tmp_path / "annuaire.csv", rows)
    common = ["--inventory", "inventories/lab", "--today", TODAY.isoformat(), "--year", str(YEAR)]
    apply_args = [*common, "--client-id", client_id, "--state-dir", str(tmp_path / "s")]
    try:
        planned = _educloud("plan", str(file), *common, "--json")
        assert planned.returncode == 0, planned.stderr
        document = json.loads(planned.stdout)
        assert document["counts"]["create_account"] == 25
        assert document["path"] == "batched"

        applied = _educloud("apply", str(file), *apply_args, "--json")
        assert applied.returncode == 0, applied.stderr
        summary = json.loads(applied.stdout)
        assert summary["applied"]["create_account"] == 25
        notices = " ".join(summary["notices"])
        assert (notice in notices) if notice else notices == "", notices
        assert len(summary["sheets"]) == 2  # the class's sheet and the index
        kc_admin.change_current_realm(lab_keycloak.realm)
        assert len(kc_admin.get_users({"search": tag})) == 25

        again = _educloud("apply", str(file), *apply_args)
        assert "applied: nothing to do" in again.stdout, again.stdout + again.stderr
    finally:
        _cleanup_lab_realm(kc_admin, lab_keycloak, tag, OTHER_UAI)


def test_cli_refuses_a_wrong_secret_in_one_line(tmp_path):
    file = write_csv(tmp_path / "annuaire.csv", [pupil(1, "3A")])
    result = _educloud(
        "plan",
        str(file),
        "--inventory",
        "inventories/lab",
        env={"EDUCLOUD_ACCOUNTS_CLIENT_SECRET": "not-the-secret"},
    )
    assert result.returncode == 2  # the CLI's exit status for an error the user can fix
    assert "Traceback" not in result.stderr
    assert "check its client secret" in " ".join(result.stderr.split()), result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout


def test_cli_applies_nothing_when_a_line_is_invalid(kc_admin, lab_keycloak, tmp_path):
    tag = secrets.token_hex(2)
    rows = [pupil(1, "3A", id=f"bad{tag}a"), pupil(2, "3A", uai="0750001A", id=f"bad{tag}b")]
    file = write_csv(tmp_path / "annuaire.csv", rows)
    result = _educloud(
        "apply", str(file), "--inventory", "inventories/lab", "--state-dir", str(tmp_path / "s")
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "line 3: uai" in message and "Traceback" not in message, message
    kc_admin.change_current_realm(lab_keycloak.realm)
    assert kc_admin.get_users({"search": f"bad{tag}"}) == []


def test_an_unmanaged_account_is_never_created_over(kc_admin, scratch_realm, directory, tmp_path):
    kc_admin.connection.raw_post(
        f"admin/realms/{scratch_realm}/users",
        data=json.dumps({"username": "eleve0001", "enabled": True}),  # e.g. made by hand
    )
    file = write_csv(tmp_path / "annuaire.csv", [pupil(1, "3A"), pupil(2, "3A")])

    report = report_of(directory, file)
    assert [p.message.split(":")[0] for p in report.problems] == ["eleve0001"]
    assert "not managed by educloud accounts" in report.problems[0].message
    with pytest.raises(InvalidFileError):
        apply(directory, file, tmp_path / "state")
    assert set(users_by_name(kc_admin, scratch_realm)) == {"eleve0001"}  # nothing applied
