"""Backups against the lab (issue #8): faults the repository survives or reveals, and the
restore drill, on the real repository and on a tampered copy.

(a) a backup killed in the middle leaves the repository consistent (restic check) and the
    next run completes with a new snapshot;
(b) a flipped byte in a pack is found by restic check --read-data, which names the pack;
(c) the drill fails loudly on that tampered copy, at the restore, before anything else;
(d) the drill proves the real repository: tables, files, Keycloak, a login;
(e) a failed run is seen: the unit fails, and the operators get a mail through the relay.

The backup host and the target are the inventory's (edu1 and bak1 in the lab). The times
and sizes measured are printed (pytest -s) for the issue's note.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.educloud_cli import run_educloud

from educloud.backup.status import BackupStatus, parse_status
from educloud.deployment import inventory as inventory_vars
from educloud.lab import orchestrate
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.paths import inventories_dir

pytestmark = pytest.mark.lab

LAB = inventories_dir() / "lab"
AGENT = "/usr/local/sbin/educloud-backup"
CONFIG = "/etc/educloud/backup/backup.json"
STATUS = "/var/lib/educloud-backup/status.json"
SERVICE = "educloud-backup.service"
REPOSITORIES = "/srv/educloud-backup/repos"  # on the target, one per client account
# Random, hence incompressible and not deduplicated: long enough a backup to kill midway.
# Under /etc/educloud: a path the backup role backs up (backup_paths).
FAULT_DIR = "/etc/educloud/fault-test"
FAULT_MB = 300
TAMPERED = "edu1-tampered"
DRILL_TIMEOUT = 900


@dataclass(frozen=True)
class Lab:
    source: str
    target: str
    target_address: str


def _ssh(
    host: str, command: str, timeout: float, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*orchestrate.ssh_command(host), "--", command],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def ssh(
    host: str, command: str, *, check: bool = True, timeout: float = 600, stdin: str = ""
) -> str:
    done = _ssh(host, command, timeout, stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"{host}: {command}: exit {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def ssh_rc(host: str, command: str, *, timeout: float = 600) -> tuple[int, str]:
    done = _ssh(host, command, timeout)
    return done.returncode, done.stdout + done.stderr


def educloud(*args: str) -> subprocess.CompletedProcess[str]:
    return run_educloud(*args, timeout=DRILL_TIMEOUT)


def status(lab: Lab) -> BackupStatus:
    return parse_status(ssh(lab.source, f"cat {STATUS}"), f"{lab.source}:{STATUS}")


def repository_bytes(lab: Lab, name: str) -> int:
    return int(ssh(lab.target, f"du -sb {REPOSITORIES}/{name}").split()[0])


def run_backup(lab: Lab) -> BackupStatus:
    ssh(lab.source, f"systemctl start {SERVICE}", timeout=1800)
    return status(lab)


@pytest.fixture(scope="module")
def lab() -> Lab:
    hosts = inventory_vars.load(LAB)
    sources = [h for h in hosts if "backup" in h.groups]
    targets = [h for h in hosts if "backup_target" in h.groups]
    if not sources or not targets:
        pytest.skip("the lab inventory has no backup or backup_target host")
    if not ssh(sources[0].name, f"test -f {CONFIG} && echo yes", check=False).strip():
        pytest.fail(f"{sources[0].name}: the backup role is not deployed (educloud deploy)")
    return Lab(sources[0].name, targets[0].name, targets[0].address)


def test_interrupted_backup_leaves_a_consistent_repository(lab: Lab) -> None:
    before = status(lab)
    ssh(lab.source, f"mkdir -p {FAULT_DIR} && head -c {FAULT_MB}M /dev/urandom > {FAULT_DIR}/x")
    try:
        size = repository_bytes(lab, lab.source)
        ssh(lab.source, f"systemctl start --no-block {SERVICE}")
        # Kill restic once a third of the data is in the repository: packs written, the
        # snapshot not yet.
        deadline = time.monotonic() + 300
        pid = ""
        while time.monotonic() < deadline:
            pid = ssh(lab.source, "pgrep -o -f '^restic .* backup ' || true").strip()
            if pid and repository_bytes(lab, lab.source) > size + FAULT_MB * 2**20 // 3:
                break
            if not pid and ssh(lab.source, f"systemctl is-active {SERVICE} || true").strip() in (
                "inactive",
                "failed",
            ):
                pytest.fail("the backup ended before it could be interrupted: raise FAULT_MB")
            time.sleep(0.3)
        else:
            pytest.fail("restic did not upload a third of the data in 300 s")
        ssh(lab.source, f"kill -KILL {pid}")
        deadline = time.monotonic() + 120
        while ssh(lab.source, f"systemctl is-active {SERVICE} || true").strip() == "activating":
            assert time.monotonic() < deadline, f"{SERVICE} still running after restic was killed"
            time.sleep(0.5)
        killed = status(lab)
        assert killed.last_run is not None and not killed.last_run.ok
        assert "restic backup failed" in killed.last_run.error
        assert {s.id for s in killed.snapshots} == {s.id for s in before.snapshots}
        partial = repository_bytes(lab, lab.source)
        print(f"\nkilled restic with {(partial - size) / 2**20:.0f} MiB of packs written")

        # The packs written are unreferenced; the index and snapshots are intact.
        rc, said = ssh_rc(lab.source, f"{AGENT} check")
        assert rc == 0, said
        assert "no errors were found" in said

        resumed = run_backup(lab)
        assert resumed.last_run is not None and resumed.last_run.ok, resumed.last_run
        new_id = str(resumed.last_run.snapshot_id)  # restic's summary gives the short id
        assert not any(s.id.startswith(new_id) for s in before.snapshots)
        assert resumed.newest is not None and resumed.newest.id.startswith(new_id)
        print(
            f"backup with {FAULT_MB} MiB more after the interruption: "
            f"{resumed.last_run.duration_s} s, {resumed.last_run.data_added_bytes} bytes added"
        )
    finally:
        ssh(lab.source, f"rm -rf {FAULT_DIR}")
    # Two runs without the random data, then the retention run as the administrators do it
    # (the client's key may only append, issue #29): the day's earlier snapshots are
    # forgotten (one a day is kept) and the killed upload's unreferenced packs pruned.
    first = run_backup(lab)
    second = run_backup(lab)
    assert first.last_run is not None and second.last_run is not None
    assert second.last_run.ok
    forget = educloud("backup", "forget", "--inventory", str(LAB), "--apply")
    assert forget.returncode == 0, forget.stdout + forget.stderr[-2000:]
    size_after = repository_bytes(lab, lab.source)
    print(
        f"backup of the lab's data: {first.last_run.duration_s} s then "
        f"{second.last_run.duration_s} s; second run added "
        f"{second.last_run.data_added_bytes} bytes; repository after two runs: "
        f"{size_after / 2**20:.1f} MiB ({len(second.snapshots)} snapshot(s) kept)"
    )
    assert size_after < FAULT_MB * 2**20 // 2, "the interrupted run's data was not pruned"


def _restic_on_target(lab: Lab, repository: str, workdir: Path, *args: str) -> str:
    """restic from this machine on a copy on the target, as root over SFTP (reads only)."""
    vault = lab_secrets.read(LabPaths.default())
    password = workdir / "password"
    password.write_text(vault["vault_backup_repository_password"])
    password.chmod(0o600)
    paths = LabPaths.default()
    command = (
        f"ssh -i {paths.ssh_key} -o UserKnownHostsFile={paths.known_hosts} "
        f"-o StrictHostKeyChecking=yes -o BatchMode=yes root@{lab.target_address} -s sftp"
    )
    env = {
        **os.environ,
        "RESTIC_REPOSITORY": f"sftp:root@{lab.target_address}:{repository}",
        "RESTIC_PASSWORD_FILE": str(password),
    }
    try:
        done = subprocess.run(
            ["restic", "-o", f"sftp.command={command}", "--no-cache", "--no-lock", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
    finally:
        password.unlink()
    return done.stdout


@pytest.fixture(scope="module")
def tampered(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A copy of the repository whose pack holding the newest snapshot's root tree has one
    byte flipped; removed afterwards. Yields that pack's id."""
    copy = f"{REPOSITORIES}/{TAMPERED}"
    ssh(lab.target, f"rm -rf {copy} && cp -a {REPOSITORIES}/{lab.source} {copy}")
    try:
        workdir = tmp_path_factory.mktemp("restic")
        snapshots = json.loads(_restic_on_target(lab, copy, workdir, "snapshots", "--json"))
        tree = sorted(snapshots, key=lambda s: s["time"])[-1]["tree"]
        found = _restic_on_target(lab, copy, workdir, "find", "--tree", tree, "--show-pack-id")
        pack = found.split("belongs to pack ", 1)[1].split()[0]
        flip = (
            "import sys\n"
            "with open(sys.argv[1], 'r+b') as f:\n"
            "    f.seek(0, 2); middle = f.tell() // 2; f.seek(middle); b = f.read(1)\n"
            "    f.seek(middle); f.write(bytes([b[0] ^ 0xFF]))\n"
        )
        ssh(lab.target, f"python3 - {copy}/data/{pack[:2]}/{pack}", stdin=flip)
        yield pack
    finally:
        ssh(lab.target, f"rm -rf {copy}")


def test_corrupted_pack_found_by_check(
    lab: Lab, tampered: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The client's account serves only its own repository (append-only): the copy is read
    # by restic from this machine, as the administrators read repositories.
    started = time.monotonic()
    try:
        _restic_on_target(
            lab,
            f"{REPOSITORIES}/{TAMPERED}",
            tmp_path_factory.mktemp("check"),
            "check",
            "--read-data",
        )
    except subprocess.CalledProcessError as failed:
        said = failed.stdout + failed.stderr
    else:
        pytest.fail("restic check --read-data found nothing wrong in the tampered copy")
    print(f"\ncheck --read-data of the tampered copy: {time.monotonic() - started:.1f} s")
    assert f"Pack ID does not match, want {tampered}" in said, said[-2000:]
    assert "repository contains errors" in said


def test_drill_fails_loudly_on_a_tampered_backup(lab: Lab, tampered: str) -> None:
    # The drill reads the client's own repository (its key serves no other): the tampered
    # copy takes the real one's place for the drill, which is put back whatever happens.
    real, aside = f"{REPOSITORIES}/{lab.source}", f"{REPOSITORIES}/{lab.source}.aside"
    ssh(lab.target, f"mv {real} {aside} && cp -a {REPOSITORIES}/{TAMPERED} {real}")
    started = time.monotonic()
    try:
        done = educloud("backup", "drill")
    finally:
        ssh(lab.target, f"rm -rf {real} && mv {aside} {real}")
    print(f"\ndrill on the tampered copy failed in {time.monotonic() - started:.0f} s")
    print(done.stdout)
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stderr[-3000:]
    assert "drill FAILED" in said
    assert "Restore the snapshot" in said  # the first step that reads packs: fails fast
    assert "ciphertext verification failed" in said
    assert "drill passed" not in done.stdout
    assert "tables verified: not reached" in done.stdout
    assert "Traceback" not in done.stderr


def test_drill_proves_the_backup() -> None:
    done = educloud("backup", "drill")
    print("\n" + done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "drill passed" in done.stdout
    said = " ".join(done.stdout.split())
    assert "Keycloak login ok: service-account-educloud-automation in realm master" in said
    assert "(token for service-account-educloud-automation)" in said
    assert "drill1" not in educloud("lab", "status").stdout  # destroyed afterwards


def test_a_failed_backup_mails_the_operators(lab: Lab) -> None:
    """The timer's service fails (a runtime drop-in replaces its command by `false`):
    systemd marks it failed, and its OnFailure unit mails the operators, in French,
    through the approved relay (the lab's SMTP sink, which files it under mail/new)."""
    maildir = LabPaths.default().mail / "new"
    before = set(maildir.iterdir()) if maildir.is_dir() else set()
    dropin = "/run/systemd/system/educloud-backup.service.d"
    ssh(
        lab.source,
        f"mkdir -p {dropin} && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n'"
        f" > {dropin}/zz-fault-test.conf && systemctl daemon-reload",
    )
    try:
        rc, _ = ssh_rc(lab.source, f"systemctl start {SERVICE}")
        assert rc != 0, "the sabotaged backup did not fail"
        assert ssh(lab.source, f"systemctl is-failed {SERVICE}", check=False).strip() == "failed"
        deadline, new = time.monotonic() + 60, set()
        while time.monotonic() < deadline and not new:
            time.sleep(1)
            new = (set(maildir.iterdir()) if maildir.is_dir() else set()) - before
        subjects = [
            str(email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["Subject"])
            for path in new
        ]
        expected = f"[educloud] Échec de la sauvegarde sur {lab.source}"
        assert expected in subjects, f"no failure mail in {maildir} within 60 s: {subjects}"
    finally:
        ssh(lab.source, f"rm -rf {dropin} && systemctl daemon-reload && systemctl reset-failed")
    # The real service still works once the fault is gone.
    assert run_backup(lab).last_run.ok  # type: ignore[union-attr]
