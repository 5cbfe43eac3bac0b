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


def test_the_backup_key_opens_sftp_in_the_chroot_and_no_shell(host):
    config = _config(host)
    target = config["target"]
    options = [
        "-i", config["ssh_key"],
        "-o", f"UserKnownHostsFile={config['known_hosts']}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
    ]  # fmt: skip
    login = f"{target['user']}@{target['address']}"
    port = str(target["port"])
    command = host.run(
        shlex.join(["timeout", "30", "ssh", *options, "-p", port, login, "id"]) + " </dev/null"
    )
    assert command.rc != 0
    assert "uid=" not in command.stdout
    # The same key does open SFTP, where the chroot shows the repositories only.
    sftp = shlex.join(["timeout", "30", "sftp", "-b", "-", *options, "-P", port, login])
    listing = host.run(f"echo 'ls /' | {sftp}")
    assert listing.rc == 0, listing.stderr
    assert listing.stdout.split()[-1] == "/repos"
