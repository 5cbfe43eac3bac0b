"""Backups (C7, C10) on the operator's side: the agent's status file read and judged
against retention.yml, the retention plan's backups category, the drill's request checked
before anything changes, and the drill's report read back. The agent itself is tested by
test_backup_agent.py; the drill against the lab by tests/integration/test_backup_lab.py."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from educloud import policy
from educloud import remote as educloud_remote
from educloud.backup import compliance, drill, maintenance, remote
from educloud.backup.status import (
    BackupError,
    Snapshot,
    local_reader,
    parse_snapshots,
    parse_status,
    parse_time,
    review,
)
from educloud.deployment.inventory import InventoryHost
from educloud.paths import repo_root
from educloud.remote import ssh_command
from educloud.retention.rules import Stores, plan, rules_from_policy
from educloud.retention.stores import BackupsCheck, delegated_categories

RULES = rules_from_policy(policy.load().retention)
DAYS = RULES["backups"].days
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _snapshot(days_old: float, number: int) -> dict[str, str]:
    # restic prints nanoseconds and the host's offset
    when = (NOW - timedelta(days=days_old)).astimezone(UTC)
    return {
        "id": f"{number:08x}" + "ab" * 28,
        "short_id": f"{number:08x}",
        "time": when.strftime("%Y-%m-%dT%H:%M:%S.123456789+00:00"),
    }


def _status(ages: list[float], *, ok: bool = True, error: str | None = None) -> str:
    return json.dumps(
        {
            "host": "edu1",
            "repository": "sftp:educloud-backup@198.18.0.12:/repos/edu1",
            "last_run": {
                "started": "2026-11-26T02:15:03+00:00",
                "finished": "2026-11-26T02:16:10+00:00",
                "ok": ok,
                "error": error,
                "snapshot_id": _snapshot(0, 1)["id"],
                "duration_s": 67.2,
                "files_new": 12,
                "data_added_bytes": 123456,
            },
            "snapshots": [_snapshot(age, i) for i, age in enumerate(ages, start=1)],
            "keep": {"daily_days": 7, "weekly_days": 28, "monthly_days": 30, "retention_days": 30},
        }
    )


# ---------------------------------------------------------------------------- status file


def test_restic_timestamps_are_read_in_utc() -> None:
    parsed = parse_time("2026-11-26T03:15:03.123456789+01:00", "t")
    assert parsed == datetime(2026, 11, 26, 2, 15, 3, 123456, tzinfo=UTC)
    assert parse_time("2026-11-26T02:15:03Z", "t").tzinfo is UTC
    for bad in ("yesterday", "2026-11-26T02:15:03", "", None, 5):
        with pytest.raises(BackupError):
            parse_time(bad, "t")


def test_status_file_parsed() -> None:
    status = parse_status(_status([0.3, 6, 13]), "edu1:status.json")
    assert status.host == "edu1"
    assert [s.short_id for s in status.snapshots] == ["00000003", "00000002", "00000001"]
    assert status.oldest is not None and status.oldest.short_id == "00000003"
    assert status.last_run is not None and status.last_run.ok
    assert status.last_run.data_added_bytes == 123456
    assert status.keep["retention_days"] == 30


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"snapshots": {}}', '{"snapshots": [{"time": "x"}]}', '{"keep": 3}'],
)
def test_unreadable_status_file_is_a_clear_error(text: str) -> None:
    with pytest.raises(BackupError, match=r"edu1:status\.json"):
        parse_status(text, "edu1:status.json")


def test_local_reader(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert local_reader(path)() is None  # never ran
    path.write_text(_status([1]))
    status = local_reader(path)()
    assert status is not None and len(status.snapshots) == 1


# ---------------------------------------------------------------------------- snapshots vs policy


def test_review_within_the_period() -> None:
    found = review(parse_status(_status([0.2, 3, 10, 29.5]), "s"), DAYS, NOW)
    assert found.count == 4 and not found.past and found.ok
    assert f"none older than {DAYS} days" in found.summary()
    assert "last run ok" in found.summary()


def test_review_snapshot_due_at_the_next_forget() -> None:
    # A day's run has not yet passed since it outlived the period: due, not a failure.
    found = review(parse_status(_status([0.5, DAYS + 0.5]), "s"), DAYS, NOW)
    assert [s.short_id for s in found.past] == ["00000002"]
    assert not found.overdue and found.ok
    assert "due at the next forget (00000002)" in found.summary()


def test_review_snapshot_not_forgotten_is_not_ok() -> None:
    found = review(parse_status(_status([0.5, DAYS + 3]), "s"), DAYS, NOW)
    assert [s.short_id for s in found.overdue] == ["00000002"]
    assert not found.ok
    assert "forget is not running" in found.summary()


def test_review_failed_last_run_is_not_ok() -> None:
    found = review(parse_status(_status([1], ok=False, error="restic backup failed"), "s"), 30, NOW)
    assert not found.ok
    assert "last run FAILED: restic backup failed" in found.summary()


# ---------------------------------------------------------------------------- retention plan


def _enforced(readers: Any) -> list[Any]:
    check = BackupsCheck(lambda: readers, clock=lambda: NOW)
    stores = Stores(exports_dir=Path("/nonexistent"), journal_path=Path("/nonexistent/j"))
    stores.checks.append(check)
    found = plan(RULES, stores, NOW.date())
    return [e for e in found.enforced if e.category == "backups"]


def test_retention_plan_reports_each_backup_host() -> None:
    (entry,) = _enforced([("edu1", lambda: parse_status(_status([0.2, 4, 30.5]), "s"))])
    assert entry.enforced_by == "backup"
    assert entry.ok is True
    assert entry.status.startswith("edu1: 3 snapshots, oldest ")
    assert "1 past 30 days, due at the next forget" in entry.status


def test_retention_plan_flags_a_forget_that_does_not_run() -> None:
    (entry,) = _enforced([("edu1", lambda: parse_status(_status([40]), "s"))])
    assert entry.ok is False


def test_retention_plan_without_status() -> None:
    (never,) = _enforced([("edu1", lambda: None)])
    assert never.ok is False and "no backup run yet" in never.status

    def unreachable() -> None:
        raise BackupError("edu1: cannot reach 198.18.0.11 over SSH: timeout")

    (unknown,) = _enforced([("edu1", unreachable)])
    assert unknown.ok is None and "cannot reach" in unknown.status
    (nobody,) = _enforced([])
    assert nobody.ok is None and "no backup host" in nobody.status


def test_delegated_categories_leave_backups_to_the_check() -> None:
    unchecked = delegated_categories(RULES, nextcloud=True)
    assert [e.status for e in unchecked if e.category == "backups"] == [
        "the backup tool's forget and prune (backup role): no backup status here"
    ]
    checked = delegated_categories(RULES, nextcloud=True, backups_checked=True)
    assert "backups" not in {e.category for e in checked}


def test_plan_for_another_day_reviews_that_day() -> None:
    check = BackupsCheck(
        lambda: [("edu1", lambda: parse_status(_status([1]), "s"))], clock=lambda: NOW
    )
    (entry,) = check(RULES, NOW.date() + timedelta(days=DAYS + 5))
    assert entry.ok is False  # by then, without a run, it would be overdue


# ---------------------------------------------------------------------------- ssh to the agent


def _host(name: str, groups: tuple[str, ...], **variables: Any) -> InventoryHost:
    return InventoryHost(name, groups, {"ansible_host": "198.18.0.11", **variables})


def test_agent_over_ssh_as_ansible_reaches_the_host() -> None:
    host = _host(
        "edu1",
        ("backup",),
        ansible_user="root",
        ansible_ssh_private_key_file="/lab/id",
        ansible_ssh_common_args="-o UserKnownHostsFile=/lab/kh -o StrictHostKeyChecking=yes",
    )
    argv = ssh_command(host, ["/usr/local/sbin/educloud-backup", "check"])
    assert argv[:7] == ["ssh", "-o", "ConnectTimeout=15", "-o", "BatchMode=yes", "-i", "/lab/id"]
    assert "UserKnownHostsFile=/lab/kh" in argv
    assert argv[-3:] == ["root@198.18.0.11", "--", "/usr/local/sbin/educloud-backup check"]
    admin = _host("edu1", ("backup",), ansible_user="admin", ansible_port=2222)
    argv = ssh_command(admin, ["cat", "/var/lib/educloud-backup/status.json"])
    assert argv[-4:-2] == ["2222", "admin@198.18.0.11"]
    assert argv[-1] == "sudo -n cat /var/lib/educloud-backup/status.json"


def test_unreachable_backup_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 255, "", "ssh: connect to host: No route\n")

    monkeypatch.setattr(educloud_remote.subprocess, "run", fake_run)
    with pytest.raises(BackupError, match=r"edu1: cannot reach 198\.18\.0\.11 over SSH"):
        remote.RemoteAgent(_host("edu1", ("backup",))).status()


def test_status_and_snapshots_through_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "cat": subprocess.CompletedProcess([], 0, _status([0.1, 2]), ""),
        "snapshots": subprocess.CompletedProcess([], 0, json.dumps([_snapshot(1, 7)]), ""),
    }

    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        remote_command = argv[-1].split()
        return answers["cat" if remote_command[0] == "cat" else remote_command[-1]]

    monkeypatch.setattr(educloud_remote.subprocess, "run", fake_run)
    agent = remote.RemoteAgent(_host("edu1", ("backup",)))
    status = agent.status()
    assert status is not None and len(status.snapshots) == 2
    (snapshot,) = agent.snapshots()
    assert snapshot.short_id == "00000007"


# ---------------------------------------------------------------------------- the drill's request

HOSTS = [
    _host("edu1", ("backup", "keycloak", "postgresql")),
    InventoryHost("bak1", ("backup_target",), {"ansible_host": "198.18.0.12"}),
]


class _Machines:
    """Hosts for the drill's plan: the lab's naming rule, the given hosts taken."""

    def __init__(self, taken: list[str]) -> None:
        self._taken = taken

    def taken(self) -> list[str]:
        return self._taken

    def check_name(self, name: str) -> None:
        from educloud.lab.settings import check_host_name

        check_host_name(name)

    def exists(self, name: str) -> bool:
        return name in self._taken

    def boot(self, name: str, progress: Any) -> drill.FreshHost:
        raise AssertionError("planning boots nothing")

    def destroy(self, name: str, progress: Any) -> None:
        raise AssertionError("planning destroys nothing")


def _request(**changes: Any) -> drill.DrillRequest:
    return drill.DrillRequest(Path("inventories/lab"), **changes)


def test_drill_defaults_to_the_first_backup_host() -> None:
    checked = drill.plan_drill(_request(), HOSTS, _Machines(["edu1", "bak1"]))
    assert checked.source.name == "edu1"
    assert checked.lab_host == "drill1" and checked.repository_path is None
    # The source's append-only account serves its own repository only: no copy elsewhere.
    with pytest.raises(Exception, match="serves only its own repository"):
        drill.plan_drill(_request(repository_path="/repos/edu1-tampered"), HOSTS, _Machines([]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "bak1"}, "not a backup host"),
        ({"lab_host": "edu1"}, "is a host of the lab or of the inventory"),
        ({"lab_host": "bak1"}, "is a host of the lab or of the inventory"),
        ({"lab_host": "mon1"}, "is a host of the lab or of the inventory"),
        ({"lab_host": "drill_1"}, "lab host name 'drill_1' is invalid"),
        ({"lab_host": "a-very-long-name"}, "is invalid"),
        ({"repository_path": "/repos/edu1"}, "serves only its own repository"),
    ],
)
def test_drill_refuses_bad_requests(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        drill.plan_drill(_request(**changes), HOSTS, _Machines(["edu1", "bak1", "mon1"]))


def test_drill_needs_a_backup_host_and_a_target() -> None:
    with pytest.raises(BackupError, match="no host in the backup group"):
        drill.plan_drill(_request(), HOSTS[1:], _Machines([]))
    with pytest.raises(BackupError, match="no host in the backup_target group"):
        drill.plan_drill(_request(), HOSTS[:1], _Machines([]))


@pytest.mark.parametrize("kind", ["sftp", "s3"])
def test_drill_of_a_host_backing_up_at_a_provider_needs_no_target(kind: str) -> None:
    (edu1,) = HOSTS[:1]
    source = InventoryHost(edu1.name, edu1.groups, {**edu1.variables, "backup_destination": kind})
    assert drill.plan_drill(_request(), [source], _Machines([])).source.name == "edu1"


def test_drill_inventory_reaches_the_new_host_like_the_lab() -> None:
    import yaml

    text = drill.drill_inventory("drill1", "198.18.0.100", Path("/k"), Path("/kh"))
    host = yaml.safe_load(text)["all"]["children"]["backup_drill"]["hosts"]["drill1"]
    assert host["ansible_host"] == "198.18.0.100"
    assert "StrictHostKeyChecking=yes" in host["ansible_ssh_common_args"]


# ---------------------------------------------------------------------------- the drill's report

VERIFY_PG = {
    "ok": True,
    "tables": 92,
    "rows": 5311,
    "differences": [],
    "databases": {"keycloak": [], "nextcloud": [], "postgres": []},
}
VERIFY_FILES = {"ok": True, "files": 41, "bytes": 12_345_678, "differences": []}


def _report(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": "edu1",
        "lab_host": "drill1",
        "repository": "sftp:educloud-backup@198.18.0.12:/repos/edu1",
        "snapshot": _snapshot(0, 9) | {"time": "2026-11-26T08:40:00.5+00:00"},
        "restore_started_at": "2026-11-26T08:52:30+00:00",
        "steps": {
            "restore": {"delta": "0:00:04.250000", "rc": 0},
            "restore_postgresql": {"delta": "0:00:09.100000", "rc": 0},
            "verify_postgresql": {"delta": "0:00:01.0", "rc": 0},
            "keycloak_ready": {"seconds": 61.5},
        },
        "outputs": {
            "verify_postgresql": json.dumps(VERIFY_PG),
            "verify_files": json.dumps(VERIFY_FILES),
        },
        "keycloak": {
            "user": "admin",
            "realm": "master",
            "preferred_username": "admin",
            "tenant_realm": "lab",
            "tenant_admin": "admin-lab",
            "tenant_admin_found": True,
        },
        "failed": None,
    }
    data.update(changes)
    return data


def _build(data: dict[str, Any], playbook_failure: str | None = None) -> drill.DrillReport:
    return drill.build_report(
        data, source="edu1", lab_host="drill1", playbook_failure=playbook_failure
    )


def test_drill_report_proves_everything() -> None:
    report = _build(_report())
    assert report.ok, report.problems
    assert report.snapshot is not None and report.snapshot.short_id == "00000009"
    assert drill.format_age(report.backup_age) == "12 min 29 s"
    assert report.restore_seconds == pytest.approx(4.25)
    assert report.steps["keycloak_ready"] == pytest.approx(61.5)
    assert report.postgres is not None
    assert (report.postgres.databases, report.postgres.tables, report.postgres.rows) == (
        3,
        92,
        5311,
    )
    assert report.files is not None and report.files.files == 41


def test_drill_report_names_the_failed_step() -> None:
    report = _build(
        _report(
            snapshot=None,
            steps={},
            outputs={},
            keycloak=None,
            failed={
                "step": "Restore the snapshot under the restore root (restic restore --verify)",
                "message": "educloud-backup: error: restic restore failed (exit 1): "
                "ciphertext verification failed",
            },
        )
    )
    assert not report.ok
    (problem,) = report.problems
    assert problem.startswith("step 'Restore the snapshot")
    assert "ciphertext verification failed" in problem


def test_drill_report_differences_fail_the_drill() -> None:
    bad = VERIFY_PG | {"ok": False, "differences": ["keycloak: public.user_entity: missing"]}
    report = _build(_report(outputs={"verify_postgresql": json.dumps(bad)}))
    assert not report.ok
    assert any("public.user_entity: missing" in p for p in report.problems)
    assert any("no file verification report" in p for p in report.problems)


def test_drill_report_refuses_a_login_for_someone_else() -> None:
    keycloak = _report()["keycloak"] | {"preferred_username": "other"}
    report = _build(_report(keycloak=keycloak))
    assert not report.ok and "gave 'other'" in report.problems[0]


def test_drill_without_report_says_why() -> None:
    report = _build({}, playbook_failure="backup-drill.yml failed (exit 2): [ERROR]: x")
    assert report.problems == ["backup-drill.yml failed (exit 2): [ERROR]: x"]


def test_drill_on_a_host_without_keycloak_needs_no_login() -> None:
    report = _build(_report(keycloak={"skipped": "no Keycloak on db1"}))
    assert report.ok and report.keycloak_skipped == "no Keycloak on db1"


def test_playbook_errors_are_collected() -> None:
    lines = [
        "TASK [x] ***\n",
        "[ERROR]: Task failed: Action failed: no snapshot\n",
        "fatal: [drill1]: FAILED! => \n",
        "fatal: [bak1]: UNREACHABLE! => {}\n",
    ]
    assert drill.playbook_errors(lines) == [
        "[ERROR]: Task failed: Action failed: no snapshot",
        "fatal: [bak1]: UNREACHABLE! => {}",
    ]


# ---------------------------------------------------------------------------- the command line


def _educloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), *args],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        timeout=120,
        check=False,
    )


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n"
        "    backup:\n      hosts:\n        srv1:\n          ansible_host: 198.18.0.71\n"
        "    backup_target:\n      hosts:\n        store1:\n          ansible_host: 198.18.0.72\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lab-host", "srv1"], "is a host of the lab or of the inventory"),
        (["--source", "store1"], "not a backup host"),
        (["--repository-path", "../repos"], "serves only its own repository"),
        (["--lab-host", "Drill 1"], "is invalid"),
    ],
)
def test_drill_bad_input_exits_2_before_any_change(
    inventory: Path, args: list[str], message: str
) -> None:
    done = _educloud("backup", "drill", "--inventory", str(inventory), *args)
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert "booting" not in done.stderr


def test_agent_commands_need_a_backup_host(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    web1:\n      ansible_host: 198.18.0.73\n"
    )
    for command in ("run", "snapshots", "check"):
        done = _educloud("backup", command, "--inventory", str(tmp_path))
        assert done.returncode == 2
        assert "has no host in the backup group" in " ".join(done.stderr.split())
        assert "Traceback" not in done.stderr


def test_agent_commands_refuse_an_unknown_host(inventory: Path) -> None:
    done = _educloud("backup", "snapshots", "--inventory", str(inventory), "--host", "nope")
    assert done.returncode == 2
    assert "not a backup host" in " ".join(done.stderr.split())


def test_run_needs_a_sane_timeout() -> None:
    done = _educloud("backup", "run", "--timeout", "5")
    assert done.returncode == 2 and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- charter checks' rules

POLICIES = policy.load()
CONFIG = {
    "repository": "sftp:educloud-backup@198.18.0.12:/repos/edu1",
    "target": {"address": "198.18.0.12", "port": 22, "user": "educloud-backup"},
    "keep": {"daily_days": 7, "weekly_days": 28, "monthly_days": 30, "retention_days": 30},
}


def test_repository_goes_to_a_declared_target_in_france() -> None:
    found, problems = compliance.target_destinations(CONFIG, POLICIES)
    assert problems == []
    assert [(d.purpose, d.country) for d in found] == [("backup_target", "FR")]
    assert compliance.not_on_itself(CONFIG, {"198.18.0.11"}) == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"address": "203.0.113.9", "port": 22}, "is not a backup_target destination"),
        ({"address": "198.18.0.12", "port": 2222}, "is not a backup_target destination"),
        ({"address": "backup.example.fr", "port": 22}, "is not an IP address"),
    ],
)
def test_repository_elsewhere_is_refused(target: dict[str, Any], message: str) -> None:
    config = CONFIG | {
        "target": target,
        "repository": f"sftp:educloud-backup@{target['address']}:/repos/edu1",
    }
    _, problems = compliance.target_destinations(config, POLICIES)
    assert any(message in p for p in problems), problems


def test_repository_on_the_host_itself_is_refused() -> None:
    assert compliance.not_on_itself(CONFIG, {"198.18.0.12", "10.0.0.1"})
    local = CONFIG | {"target": {"address": "127.0.0.1", "port": 22}}
    assert compliance.not_on_itself(local, set())
    other = CONFIG | {"repository": "sftp:educloud-backup@198.18.0.99:/repos/edu1"}
    _, problems = compliance.target_destinations(other, POLICIES)
    assert any("does not go to target" in p for p in problems)


S3_CONFIG = {
    "repository": "s3:https://198.18.0.1:9443/educloud-lab/edu1",
    "s3": {"credentials_file": "/etc/educloud/backup/s3-credentials"},
}


def test_object_storage_is_judged_by_its_url_and_what_its_name_resolves_to() -> None:
    found, problems = compliance.target_destinations(S3_CONFIG, POLICIES)
    assert problems == []
    assert [d.name for d in found] == ["backup-s3-provider"]
    assert compliance.endpoint(S3_CONFIG)[0] == compliance.Endpoint("s3", "198.18.0.1", 9443)
    named = {"repository": "s3:https://s3.example.fr:9443/educloud-lab/edu1"}
    assert compliance.target_destinations(named, POLICIES, ["198.18.0.1"])[1] == []
    _, problems = compliance.target_destinations(named, POLICIES, ["203.0.113.7"])
    assert problems == [
        "203.0.113.7:9443 is not a backup_target destination of policies/egress.yml"
    ]
    _, problems = compliance.target_destinations(named, POLICIES)
    assert problems == ["s3.example.fr resolves to no address on the host"]
    assert compliance.not_on_itself(named, {"10.0.0.5"}, ["10.0.0.5"])


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ("s3:http://198.18.0.1:9443/b/edu1", "is not s3:https://"),
        ("s3:https://198.18.0.1:443/b/edu1", "198.18.0.1:443 is not a backup_target"),
        ("s3:https://198.18.0.1:99999/b/edu1", "not a valid port"),
    ],
)
def test_object_storage_elsewhere_is_refused(repository: str, message: str) -> None:
    _, problems = compliance.target_destinations({"repository": repository}, POLICIES)
    assert any(message in p for p in problems), problems


def test_an_sftp_provider_is_an_endpoint_of_its_own() -> None:
    config = {
        "repository": "sftp:educloud-lab-sftp@198.18.0.1:educloud/edu1",
        "target": {"address": "198.18.0.1", "port": 2222, "user": "educloud-lab-sftp"},
    }
    found, problems = compliance.target_destinations(config, POLICIES)
    assert problems == [] and [d.name for d in found] == ["backup-sftp-provider"]
    assert compliance.endpoint(config)[0] == compliance.Endpoint("sftp", "198.18.0.1", 2222)


def test_scan_patterns_keep_each_secret_on_its_own_line(tmp_path: Path) -> None:
    """The repository password's file has no final newline (the role writes it so): it
    must not run into the next pattern, or the scan would look for a string that cannot
    be in any pack."""
    password = tmp_path / "repository-password"
    password.write_text("pw-0123456789abcdefghij")
    keys = tmp_path / "s3-credentials"
    keys.write_text("AWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=secret-value-xyz")
    ssh_key = tmp_path / "id_ed25519"
    body = ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmU=", "A" * 40, "B" * 40, "C" * 8]
    ssh_key.write_text("\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----", *body,
                                  "-----END OPENSSH PRIVATE KEY-----"]))  # fmt: skip

    command = compliance.scan_patterns_command(str(password), str(keys), str(ssh_key))
    lines = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert lines[: len(compliance.KNOWN_PLAINTEXT)] == list(compliance.KNOWN_PLAINTEXT)
    assert [line for line in lines[len(compliance.KNOWN_PLAINTEXT) :] if line] == [
        "pw-0123456789abcdefghij", "secret-value-xyz", "A" * 40, "B" * 40,
    ]  # fmt: skip
    only_password = compliance.scan_patterns_command(str(password), "", "")
    assert "s3" not in only_password and "id_ed25519" not in only_password


def test_forget_horizons_follow_the_policy() -> None:
    category = POLICIES.retention["backups"]
    assert compliance.keep_problems(CONFIG, category) == []
    longer = CONFIG | {"keep": CONFIG["keep"] | {"monthly_days": 365}}
    assert compliance.keep_problems(longer, category) == [
        "keep.monthly_days is 365, the policy says 30"
    ]


def test_restic_config_must_be_ciphertext() -> None:
    assert compliance.plaintext_config(b'{"version": 2, "id": "abc", "chunker_polynomial": "x"}')
    assert compliance.plaintext_config(b'  {"version": 2')
    assert not compliance.plaintext_config(bytes(range(256)))
    # Ciphertext whose first byte happens to be '{' (one repository in 256).
    assert not compliance.plaintext_config(b"{" + bytes(range(128, 256)))


# -- retention of append-only repositories (educloud backup forget) ------------------------


def _maintenance_hosts() -> list[InventoryHost]:
    common = {"ansible_user": "root", "ansible_ssh_private_key_file": "/lab/id"}
    return [
        InventoryHost("edu1", ("backup",), {**common, "ansible_host": "198.18.0.11"}),
        InventoryHost("bak1", ("backup_target",), {**common, "ansible_host": "198.18.0.12"}),
    ]


def test_a_provider_destination_is_left_to_the_hosts_own_retention() -> None:
    edu1, bak1 = _maintenance_hosts()
    assert maintenance.destination_kind(edu1, [edu1, bak1]) == "target"
    assert maintenance.destination_kind(edu1, [edu1]) == ""
    at_provider = InventoryHost("edu1", ("backup",), edu1.variables | {"backup_destination": "s3"})
    assert maintenance.destination_kind(at_provider, [at_provider]) == "s3"


def test_maintenance_reaches_the_repository_as_the_administrators() -> None:
    edu1, bak1 = _maintenance_hosts()
    storage = maintenance.storage_of(edu1, [edu1, bak1])
    assert (storage.target.name, storage.account) == ("bak1", "backup-edu1")
    assert storage.directory == "/srv/educloud-backup/repos/edu1"
    program = shlex.split(storage.rclone_program())
    assert program[-3:-1] == ["root@198.18.0.12", "--"]
    assert shlex.split(program[-1]) == [
        "runuser", "-u", "backup-edu1", "--", "rclone", "serve", "restic", "--stdio",
        "--config", "/dev/null", "/srv/educloud-backup/repos/edu1",
    ]  # fmt: skip
    assert "--append-only" not in program[-1]
    password = shlex.split(storage.password_command())
    assert password[-3:] == [
        "root@198.18.0.11",
        "--",
        "cat /etc/educloud/backup/repository-password",
    ]


def test_maintenance_takes_the_target_and_its_layout_from_the_inventory() -> None:
    edu1, bak1 = _maintenance_hosts()
    other = InventoryHost(
        "bak2",
        ("backup_target",),
        {"ansible_host": "198.18.0.13", "backup_target_base_dir": "/data/bk",
         "backup_target_account_prefix": "bk-"},
    )  # fmt: skip
    edu1 = InventoryHost("edu1", ("backup",), {**edu1.variables, "backup_target_host": "bak2"})
    storage = maintenance.storage_of(edu1, [edu1, bak1, other])
    assert (storage.account, storage.directory) == ("bk-edu1", "/data/bk/repos/edu1")
    lost = InventoryHost("edu1", ("backup",), {"backup_target_host": "nowhere"})
    with pytest.raises(BackupError, match="not a host of the backup_target group"):
        maintenance.storage_of(lost, [lost, bak1])


def test_maintenance_forgets_with_the_policy_horizons() -> None:
    keep = maintenance.Keep.from_policy({"keep": {"daily": 7, "weekly": 4, "monthly": 1}})
    assert keep == maintenance.Keep(7, 28, 30)
    planned = maintenance.forget_argv(keep, "edu1", dry_run=True)
    assert planned[-1] == "--dry-run" and "--prune" not in planned
    assert planned[:5] == ["forget", "--host", "edu1", "--tag", "educloud"]
    applied = maintenance.forget_argv(keep, "edu1", dry_run=False)
    assert applied[-3:] == ["--prune", "--max-unused", "0"]
    assert "--keep-within-weekly" in applied and "28d" in applied


def _snap(short: str, when: str) -> Snapshot:
    (found,) = parse_snapshots([{"id": short * 8, "short_id": short, "time": when}], "t")
    return found


def test_maintenance_refuses_a_snapshot_from_the_future() -> None:
    """restic's --keep-within counts from the newest snapshot: a forged one dated in the
    future would expire every real one."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    keep = maintenance.Keep(7, 28, 30)
    real = _snap("aaaaaaaa", "2026-06-01T02:15:00Z")
    forged = _snap("bbbbbbbb", "2099-01-01T00:00:00Z")
    removed = maintenance.removed_ids([{"remove": [{"id": real.id}], "keep": [{"id": forged.id}]}])
    assert removed == {real.id}
    plan = maintenance.make_plan("edu1", keep, (real, forged), removed, now)
    assert plan.future == (forged,)
    assert plan.refusal and "futur" in plan.refusal
    fine = maintenance.make_plan("edu1", keep, (real,), set(), now)
    assert fine.refusal is None and fine.kept == (real,)
    emptied = maintenance.make_plan("edu1", keep, (real,), {real.id}, now)
    assert emptied.refusal and "aucun" in emptied.refusal
