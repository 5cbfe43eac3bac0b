"""Backups to a provider outside the inventory (issue #28, item 5): edu1 is pointed at the
lab's SFTP account, then at its S3 object storage (servers on the host's side of the
bridge that no role manages: python_tools/educloud/lab/services.py), through the backup
role and the lab's inventory, as an operator with one server would. For each, on the live
lab: the deploy, a backup run, the charter's backup checks of C1, C7 and C10 on edu1
(judged as `educloud verify` judges them); a plaintext file slipped into the provider's
storage as a pack must make the ciphertext check fail, and pass once removed. Bad input (a
destination the egress policy does not list, a missing host key) is refused before
anything changes. Last, edu1 goes back to the lab's own target, whatever happened.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.lab.lab_shell import lab_playbook, lab_ssh, lab_verdict

from educloud.charter.report import GuaranteeResult
from educloud.deployment.ansible import ansible_env
from educloud.lab import services
from educloud.lab.settings import BRIDGE_ADDRESS, S3_PORT, SFTP_PORT, LabPaths
from educloud.paths import inventories_dir

pytestmark = pytest.mark.lab

HOST = "edu1"
PLAYBOOK = Path(__file__).parent / "playbooks" / "backup_role.yml"
CONFIG = "/etc/educloud/backup/backup.json"
BUCKET = "educloud-lab"
# The backup checks of C1, C7 and C10 (tests/charter/test_backup.py) that read a backup host.
CHECKS = {
    "C1": "test_backups_stored_in_france_on_another_host",
    "C7": "test_backups_run_daily_and_expire_on_time",
    "C10": "test_backup_packs_hold_only_ciphertext_as_the_destination_serves_them"
    " or test_backup_clients_cannot_delete_or_rewrite_their_backups",
}
BACKUP_CHECKS = {name for names in CHECKS.values() for name in names.split(" or ")}
CIPHERTEXT = "test_backup_packs_hold_only_ciphertext_as_the_destination_serves_them"
APPEND_ONLY = "test_backup_clients_cannot_delete_or_rewrite_their_backups"


def _playbook(variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return lab_playbook(PLAYBOOK, HOST, variables)


def _deployed(variables: dict[str, Any]) -> None:
    done = _playbook(variables)
    assert done.returncode == 0, done.stdout[-3000:]


def _verdict(guarantee: str, selection: str) -> GuaranteeResult:
    return lab_verdict(guarantee, (HOST,), selection)


def _outcomes(entry: GuaranteeResult) -> dict[str, tuple[str, str]]:
    """The backup checks' outcomes by name (the guarantee's other checks are listed too,
    as not run: the selection left them out)."""
    return {
        name: (c.outcome, c.message)
        for c in entry.checks
        if (name := c.case.split("[")[0].rsplit("::", 1)[-1]) in BACKUP_CHECKS
    }


@pytest.fixture(scope="module")
def paths() -> LabPaths:
    return LabPaths.default()


@pytest.fixture(scope="module")
def public_key() -> str:
    """edu1's backup key, as the provider installs it on the account."""
    return lab_ssh(HOST, "ssh-keygen -y -f /etc/educloud/backup/ssh/id_ed25519").strip()


def _backup_run() -> None:
    """`educloud backup run` on edu1, as an operator starts what the timer starts."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), "backup", "run", "--host", HOST],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=ansible_env(inventories_dir() / "lab"),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def back_to_the_target() -> Iterator[None]:
    """Whatever happens, edu1 backs up to the lab's own target again at the end, and its
    status file describes that repository again (a run there), not the provider's."""
    yield
    _deployed({})
    assert json.loads(lab_ssh(HOST, f"cat {CONFIG}"))["repository"] == "rclone:"
    _backup_run()


def _sftp_variables(paths: LabPaths) -> dict[str, Any]:
    return {
        "backup_destination": "sftp",
        "backup_sftp_address": str(BRIDGE_ADDRESS),
        "backup_sftp_port": SFTP_PORT,
        "backup_sftp_user": services.SFTP_ACCOUNT,
        "backup_sftp_path": str(services.sftp_repository_path(paths, HOST)),
        "backup_sftp_host_key": services.sftp_host_key(paths),
    }


def _s3_variables(paths: LabPaths) -> dict[str, Any]:
    key_id, secret = services.s3_credentials(paths)
    return {
        "backup_destination": "s3",
        "backup_s3_address": str(BRIDGE_ADDRESS),
        "backup_s3_port": S3_PORT,
        "backup_s3_bucket": BUCKET,
        "backup_s3_prefix": HOST,
        "backup_s3_access_key_id": key_id,
        "backup_s3_secret_access_key": secret,
        "backup_s3_ca_certificate": services.s3_ca_certificate(paths),
    }


def _slip_plaintext_pack(data_dir: Path, plaintext: bytes) -> Path:
    """A file of plaintext named by its own hash under the repository's data/, as restic
    names packs: restic lists it and reads it like one."""
    name = hashlib.sha256(plaintext).hexdigest()
    pack = data_dir / name[:2] / name
    pack.parent.mkdir(parents=True, exist_ok=True)
    pack.write_bytes(plaintext)
    return pack


def _proved_at_the_provider(kind: str, data_dir: Path) -> None:
    _backup_run()
    assert data_dir.is_dir(), f"no repository data at the provider: {data_dir}"
    for guarantee, selection in CHECKS.items():
        entry = _verdict(guarantee, selection)
        outcomes = _outcomes(entry)
        assert set(outcomes) == set(selection.split(" or ")), outcomes
        for name, (outcome, message) in outcomes.items():
            if name == APPEND_ONLY:
                # Not verifiable at a provider: said, never passed (nor failed).
                assert outcome == "skipped", (name, outcome, message)
                assert "ajout seul" in message
            else:
                assert outcome == "passed", f"{kind}: {name}: {outcome}: {message}"
        assert entry.status != "failed", (guarantee, outcomes)
    # Known plaintext of the data, then a backup secret (the repository's password, read
    # on edu1; for object storage, its secret key too): each named by the failure, the
    # secret never quoted.
    secrets = [lab_ssh(HOST, "cat /etc/educloud/backup/repository-password").strip()]
    if kind == "s3":
        secrets.append(services.s3_credentials(LabPaths.default())[1])
    slipped = [(b"-- pg_dump\nCREATE TABLE user_entity (id text);\n", "user_entity")]
    slipped += [(b"leaked: " + secret.encode() + b"\n", "un secret") for secret in secrets]
    for plaintext, named in slipped:
        pack = _slip_plaintext_pack(data_dir, plaintext)
        try:
            outcome, message = _outcomes(_verdict("C10", CIPHERTEXT))[CIPHERTEXT]
            assert outcome == "failed", f"{kind}: {named}: {message}"
            assert pack.name[:12] in message and f"({named})" in message, message
            assert not any(secret in message for secret in secrets)
        finally:
            pack.unlink()
    outcome, message = _outcomes(_verdict("C10", CIPHERTEXT))[CIPHERTEXT]
    assert outcome == "passed", message


def test_backups_to_a_provider_sftp_account(
    paths: LabPaths, public_key: str, back_to_the_target: None
) -> None:
    services.sftp_authorize(paths, public_key)
    _deployed(_sftp_variables(paths))
    config = json.loads(lab_ssh(HOST, f"cat {CONFIG}"))
    assert config["repository"].startswith(f"sftp:{services.SFTP_ACCOUNT}@")
    assert config["append_only"] is False
    _proved_at_the_provider("sftp", services.sftp_repository_path(paths, HOST) / "data")


def test_backups_to_a_provider_object_storage(paths: LabPaths, back_to_the_target: None) -> None:
    _deployed(_s3_variables(paths))
    config = json.loads(lab_ssh(HOST, f"cat {CONFIG}"))
    assert config["repository"] == f"s3:https://{BRIDGE_ADDRESS}:{S3_PORT}/{BUCKET}/{HOST}"
    secrets = lab_ssh(HOST, "stat -c '%a %U' /etc/educloud/backup/s3-credentials").split()
    assert secrets == ["600", "root"]
    assert lab_ssh(HOST, "test ! -e /etc/educloud/backup/ssh/id_ed25519 && echo gone").strip()
    _proved_at_the_provider("s3", services.s3_object_directory(paths, BUCKET, HOST) / "data")


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
    paths: LabPaths, back_to_the_target: None, change: dict[str, Any], message: str
) -> None:
    before = lab_ssh(HOST, f"sha256sum {CONFIG}")
    done = _playbook(_sftp_variables(paths) | change)
    assert done.returncode != 0
    assert message in " ".join(done.stdout.split()), done.stdout[-2000:]
    assert lab_ssh(HOST, f"sha256sum {CONFIG}") == before
