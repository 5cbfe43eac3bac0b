"""Backups to a provider outside the inventory (issue #28, item 5): bad settings of a
provider destination are refused by the backup role before anything changes on edu1 (a
destination the egress policy does not list, a missing host key, an unknown kind).

Backups that do reach the lab's SFTP account and S3 storage (servers on the host's side of
the bridge that no role manages: python_tools/educloud/lab/services.py), their charter
checks and the slipped plaintext packs that the ciphertext check must catch, are proved on
a host of their own, deployed as an operator deploys it: tests/lab/test_own_server.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.lab.lab_shell import lab_playbook, lab_ssh

from educloud.lab import services
from educloud.lab.settings import BRIDGE_ADDRESS, SFTP_PORT, LabPaths

pytestmark = pytest.mark.lab

HOST = "edu1"
PLAYBOOK = Path(__file__).parent / "playbooks" / "backup_role.yml"
CONFIG = "/etc/educloud/backup/backup.json"


def _playbook(variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return lab_playbook(PLAYBOOK, HOST, variables)


@pytest.fixture(scope="module")
def paths() -> LabPaths:
    return LabPaths.default()


def _sftp_variables(paths: LabPaths) -> dict[str, Any]:
    return {
        "backup_destination": "sftp",
        "backup_sftp_address": str(BRIDGE_ADDRESS),
        "backup_sftp_port": SFTP_PORT,
        "backup_sftp_user": services.SFTP_ACCOUNT,
        "backup_sftp_path": str(services.sftp_repository_path(paths, HOST)),
        "backup_sftp_host_key": services.sftp_host_key(paths),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backup_sftp_port": SFTP_PORT + 1}, "must be a backup_target destination"),
        ({"backup_sftp_host_key": ""}, "backup_sftp_host_key"),
        ({"backup_destination": "ftp"}, "backup_destination must be one of: target, sftp, s3"),
    ],
    ids=["not-in-egress-policy", "no-host-key", "unknown-kind"],
)
def test_bad_provider_settings_are_refused_before_any_change(
    paths: LabPaths, change: dict[str, Any], message: str
) -> None:
    before = lab_ssh(HOST, f"sha256sum {CONFIG}")
    done = _playbook(_sftp_variables(paths) | change)
    assert done.returncode != 0
    assert message in " ".join(done.stdout.split()), done.stdout[-2000:]
    assert lab_ssh(HOST, f"sha256sum {CONFIG}") == before
