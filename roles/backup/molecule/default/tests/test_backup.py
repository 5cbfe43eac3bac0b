"""Behaviour of the backup role on a converged host (testinfra; charter C1, C7, C10).

Run by molecule on mol-backup (its store is mol-bkstore) and against an inventory
(tests/run-all.sh: the lab's edu1, whose store is bak1). Each run starts one real backup
through systemd, as the timer would.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from educloud.backup import probe
from educloud.hostscope import skip_unless_in_group

GROUP = "backup"
PLATFORM = "mol-backup"
CONFIG_DIR = "/etc/educloud/backup"
SERVICE = "educloud-backup.service"
# Exposure score of `systemd-analyze security` (0 = fully sandboxed, 10 = nothing). The
# unit scores 2.4 on Debian 12: it runs as root to read every data directory.
MAX_EXPOSURE = 3.0


@pytest.fixture(autouse=True)
def _backup_hosts_only(host: Any) -> None:
    skip_unless_in_group(host.ansible.get_variables(), GROUP, platform=PLATFORM)


def _config(host: Any) -> dict[str, Any]:
    return json.loads(host.file(f"{CONFIG_DIR}/backup.json").content_string)


def test_secrets_are_root_only_and_not_in_the_configuration(host):
    assert host.file(CONFIG_DIR).mode == 0o700
    for name in ("repository-password", "ssh/id_ed25519"):
        secret = host.file(f"{CONFIG_DIR}/{name}")
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), name
    password = host.file(f"{CONFIG_DIR}/repository-password").content_string.strip()
    assert len(password) >= 20
    assert password not in host.file(f"{CONFIG_DIR}/backup.json").content_string


def test_timer_is_enabled_and_waiting(host):
    timer = host.service("educloud-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert "OnFailure=educloud-backup-failure.service" in host.check_output(
        f"systemctl show -p OnFailure {SERVICE}"
    )


def test_backup_service_is_sandboxed(host):
    report = host.check_output(f"systemd-analyze security {SERVICE} 2>&1 | tail -n 1")
    exposure = float(report.split("level for")[1].split(":")[1].split()[0])
    assert exposure <= MAX_EXPOSURE, report


def test_a_backup_run_through_systemd_succeeds_and_records_its_snapshot(host):
    run = host.run(f"systemctl start {SERVICE}")
    journal = host.run(f"journalctl -u {SERVICE} -n 30 --no-pager -o cat").stdout
    assert run.rc == 0, f"{SERVICE} failed:\n{journal}"
    status = json.loads(host.file(_config(host)["state_dir"] + "/status.json").content_string)
    assert status["last_run"]["ok"] is True, status["last_run"]
    assert status["last_run"]["snapshot_id"] in {s["short_id"] for s in status["snapshots"]}
    assert "password" not in json.dumps(status).lower()


def _ssh(host: Any) -> tuple[list[str], str, str]:
    config = _config(host)
    target = config["target"]
    options = [
        "-i", config["ssh_key"],
        "-o", f"UserKnownHostsFile={config['known_hosts']}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip
    return options, f"{target['user']}@{target['address']}", str(target["port"])


def _ascii_run(host: Any, command: str) -> str:
    """Run `command` and return its stdout and stderr made printable, with its status.

    The key's forced command (rclone serve restic --stdio) answers a stray command with
    HTTP/2 frames: bytes that are no UTF-8 and that testinfra fails to decode (a fresh-clone
    CI run failed on 0xfa). `cat -v` makes them printable; ssh's own failures exit 255,
    which testinfra takes for its own, so the status is echoed.
    """
    return host.run(f"{{ {command}; echo exit=$?; }} 2>&1 | cat -v").stdout


def test_the_backup_key_gives_no_shell_no_sftp_no_forwarding(host):
    options, login, port = _ssh(host)
    shell = shlex.join(["timeout", "30", "ssh", *options, "-p", port, login, "id"])
    command = _ascii_run(host, shell + " </dev/null")
    assert "uid=" not in command, command
    sftp = shlex.join(["timeout", "30", "sftp", "-b", "-", *options, "-P", port, login])
    listing = _ascii_run(host, f"echo 'ls /' | {sftp}")
    assert "exit=0" not in listing, listing
    # A direct-tcpip channel (what -L and -W open) to the target's own SSH port.
    forward = _ascii_run(
        host,
        shlex.join(["timeout", "20", "ssh", *options, "-p", port, "-W", "127.0.0.1:22", login])
        + " </dev/null",
    )
    assert "SSH-2.0" not in forward, "the backup key opened a TCP forwarding"


def test_the_backup_key_cannot_delete_nor_rewrite_its_backups(host):
    """As ransomware on this host would: with its own key, delete, overwrite and truncate
    the snapshots, packs, index, key and config it wrote. Every attempt is refused."""
    with host.sudo():
        answer = host.run(probe.command(f"{CONFIG_DIR}/backup.json", "mol-other"))
    assert answer.rc == 0, answer.stderr
    result = probe.parse(answer.stdout)
    assert not result.untried, result.attempts
    assert not result.problems, result.problems


def test_restic_forget_as_the_client_removes_nothing(host):
    with host.sudo():
        before = json.loads(host.check_output("educloud-backup snapshots"))
        forget = host.run(
            "RESTIC_PASSWORD_FILE=%s/repository-password restic -o %s -o rclone.args= "
            "-r rclone: --no-cache forget --keep-last 1 --prune",
            CONFIG_DIR,
            "rclone.program=" + _rclone_program(host),
        )
        after = json.loads(host.check_output("educloud-backup snapshots"))
    assert len(before) > 1, "the scenario needs two snapshots (the migrated one and a run)"
    assert {s["id"] for s in after} == {s["id"] for s in before}, forget.stdout + forget.stderr


def _rclone_program(host: Any) -> str:
    options, login, port = _ssh(host)
    return shlex.join(["ssh", *options, "-p", port, login])


def test_the_snapshot_written_before_the_migration_is_kept(host):
    if host.ansible.get_variables().get("inventory_hostname") != PLATFORM:
        pytest.skip("the snapshot of the old layout is made by molecule's prepare step")
    with host.sudo():
        snapshots = json.loads(host.check_output("educloud-backup snapshots"))
    assert any("legacy" in (s.get("tags") or []) for s in snapshots), snapshots
