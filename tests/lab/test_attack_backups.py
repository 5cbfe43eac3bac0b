"""Attack: ransomware on edu1 turns on its backups (issue #29, finding 4; charter C10).

Root on edu1 holds the backup key and the repository password. With them it must not be
able to delete, overwrite nor truncate what bak1 stores, nor reach another client's
repository, nor get a shell or SFTP there, nor touch the repositories' directory; the
restore drill that follows in the suite (tests/integration/test_backup_lab.py) still passes.

Destructive attempts are made only on objects this test creates for the purpose: a
sacrificial snapshot of one small random file (its own host name and tag, outside every
selection of the agent, the drill and the operators' forget), whose snapshot, packs and
index are then attacked for real; and another client's repository, made on bak1 by root.
The real repository of edu1 is only read, rewritten with its own bytes (harmless if the
control were broken) and hashed before and after. Everything made is removed at the end.

    pytest -m lab tests/lab/test_attack_backups.py   (the deployed lab)
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.lab.lab_shell import lab_ssh

from educloud.backup import probe

pytestmark = pytest.mark.lab
CLIENT = "edu1"
TARGET = "bak1"
CONFIG = "/etc/educloud/backup/backup.json"
BASE = "/srv/educloud-backup"
REPOSITORIES = f"{BASE}/repos"
OTHER = "attack-other"
PROBE_HOST = "edu1-attack-probe"


def _ssh(host: str, command: str) -> subprocess.CompletedProcess[str]:
    """A root command on a lab host whose failure is the test's to judge."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), "lab", "ssh", host, "--", command],
        capture_output=True,
        text=True,
        # The forced command (rclone serve restic --stdio) answers a stray command with
        # HTTP/2 frames: bytes that are no UTF-8 (a fresh-clone run failed on 0xfa).
        errors="replace",
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, object]:
    data: dict[str, object] = json.loads(lab_ssh(CLIENT, f"cat {CONFIG}"))
    assert str(data["repository"]).startswith("rclone:"), data["repository"]
    return data


@pytest.fixture(scope="module")
def client_ssh(config: dict[str, object]) -> list[str]:
    """ssh from edu1 to bak1 with edu1's own backup key, as its agent logs in."""
    target = config["target"]
    assert isinstance(target, dict)
    return [
        "ssh", "-i", str(config["ssh_key"]),
        "-o", f"UserKnownHostsFile={config['known_hosts']}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
        "-p", str(target["port"]), f"{target['user']}@{target['address']}",
    ]  # fmt: skip


def _tree(path: str) -> dict[str, str]:
    """sha256 of every file under path on bak1 (locks aside: restic's own, deletable)."""
    out = lab_ssh(
        TARGET,
        f"cd {shlex.quote(path)} && find . -type f ! -path './locks/*' -exec sha256sum {{}} +",
    )
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def edu1_repository() -> Iterator[dict[str, str]]:
    """edu1's repository as bak1 stores it, before the attack; compared after it."""
    before = _tree(f"{REPOSITORIES}/{CLIENT}")
    assert any(name.startswith("./snapshots/") for name in before), "no snapshot of edu1 yet"
    yield before


@pytest.fixture(scope="module")
def other_repository() -> Iterator[str]:
    """Another client's repository, as the role would make it (root-made here)."""
    path = f"{REPOSITORIES}/{OTHER}"
    marker = secrets.token_hex(16)
    lab_ssh(
        TARGET,
        f"install -d -m 0700 {path} && echo {marker} > {path}/config && chmod 0600 {path}/config",
    )
    yield marker
    lab_ssh(TARGET, f"rm -rf {path}")


def _restic(config: dict[str, object], client_ssh: list[str], *args: str) -> str:
    """restic on edu1 as its agent runs it (its key, its password), no cache."""
    command = [
        "restic", "-r", "rclone:", "--no-cache",
        "-o", "rclone.program=" + shlex.join(client_ssh), "-o", "rclone.args=",
        *args,
    ]  # fmt: skip
    env = f"RESTIC_PASSWORD_FILE={shlex.quote(str(config['password_file']))}"
    return lab_ssh(CLIENT, f"{env} {shlex.join(command)}")


@pytest.fixture(scope="module")
def sacrificial(config: dict[str, object], client_ssh: list[str]) -> Iterator[list[str]]:
    """A snapshot made to be attacked: its snapshot file, and the packs and index its
    backup added (nothing else refers to them)."""
    packs = set(_restic(config, client_ssh, "list", "packs").split())
    indexes = set(_restic(config, client_ssh, "list", "index").split())
    workdir = lab_ssh(CLIENT, "mktemp -d /root/attack-probe.XXXXXX").strip()
    lab_ssh(CLIENT, f"head -c 4096 /dev/urandom > {workdir}/victim.bin")
    summary = _restic(
        config, client_ssh, "backup", "--json", "--host", PROBE_HOST, "--tag", "attack-probe",
        f"{workdir}/victim.bin",
    )  # fmt: skip
    lab_ssh(CLIENT, f"rm -rf {workdir}")
    short = next(
        json.loads(line)["snapshot_id"]
        for line in summary.splitlines()
        if '"message_type":"summary"' in line.replace(" ", "")
    )
    # restic 0.14's summary gives the short id; the object's name is the whole one.
    snapshot = next(
        s for s in _restic(config, client_ssh, "list", "snapshots").split() if s.startswith(short)
    )
    new_packs = sorted(set(_restic(config, client_ssh, "list", "packs").split()) - packs)
    new_indexes = sorted(set(_restic(config, client_ssh, "list", "index").split()) - indexes)
    victims = [f"/snapshots/{snapshot}"]
    victims += [f"/data/{p}" for p in new_packs] + [f"/index/{i}" for i in new_indexes]
    yield victims
    # Removed as bak1's root, as an operators' forget and prune of that snapshot would.
    files = [f"snapshots/{snapshot}"] + [f"index/{i}" for i in new_indexes]
    files += [f"data/{p[:2]}/{p}" for p in new_packs]
    files.append(f"data/00/{'0' * 56}edc10bad")  # the probe's scratch pack
    repository = f"{REPOSITORIES}/{CLIENT}"
    lab_ssh(TARGET, f"cd {repository} && rm -f {' '.join(shlex.quote(f) for f in files)}")


def test_no_shell_no_sftp_no_forwarding_with_the_backup_key(client_ssh: list[str]) -> None:
    ssh = shlex.join(["timeout", "30", *client_ssh])
    shell = _ssh(CLIENT, f"{ssh} id </dev/null")
    assert "uid=" not in shell.stdout, shell.stdout
    # A command of its own: the forced command runs instead (the effects are checked below).
    created = f"{REPOSITORIES}/attack-probe-created"
    _ssh(CLIENT, f"{ssh} 'touch {created}; chmod 0777 {REPOSITORIES}' </dev/null")
    sftp = shlex.join(["timeout", "30", "sftp", "-b", "-", *client_ssh[1:-1], client_ssh[-1]])
    sftp = sftp.replace(" -p ", " -P ")
    listing = _ssh(CLIENT, f"printf 'ls {REPOSITORIES}\\nchmod 777 {REPOSITORIES}\\n' | {sftp}")
    assert listing.returncode != 0, listing.stdout
    # (Asking for the sftp subsystem runs the forced command instead, which answers no
    # SFTP: the sftp client above fails to start its session.)
    tunnel = ["timeout", "20", *client_ssh[:-1], "-W", "127.0.0.1:22", client_ssh[-1]]
    forward = _ssh(CLIENT, f"{shlex.join(tunnel)} </dev/null")
    assert "SSH-2.0" not in forward.stdout, "edu1's backup key opened a TCP forwarding"
    mode = lab_ssh(TARGET, f"stat -c '%U %a' {REPOSITORIES}").split()
    assert mode == ["root", "711"], f"{REPOSITORIES} is now {mode}"
    assert _ssh(TARGET, f"test -e {created}").returncode == 1, f"{created} was created"


def test_the_backup_key_cannot_delete_overwrite_nor_truncate(
    config: dict[str, object],
    edu1_repository: dict[str, str],
    other_repository: str,
    sacrificial: list[str],
) -> None:
    answer = _ssh(CLIENT, probe.command(CONFIG, OTHER, tuple(sacrificial)))
    assert answer.returncode == 0, answer.stderr[-500:]
    result = probe.parse(answer.stdout)
    assert not result.untried, result.attempts
    assert not result.problems, result.problems
    tried = {a["what"] for a in result.attempts}
    for victim in sacrificial:
        assert {f"delete {victim}", f"overwrite {victim}", f"truncate {victim}"} <= tried
    # Every file edu1's repository held before the attack is still there, unchanged.
    after = _tree(f"{REPOSITORIES}/{CLIENT}")
    changed = sorted(n for n, digest in edu1_repository.items() if after.get(n) != digest)
    assert not changed, f"changed or deleted on {TARGET}: {changed[:10]}"
    # The other client's repository: neither read (the probe) nor touched.
    marker = lab_ssh(TARGET, f"cat {REPOSITORIES}/{OTHER}/config").strip()
    assert marker == other_repository


def test_restic_forget_and_prune_as_the_client_remove_nothing(
    config: dict[str, object], client_ssh: list[str]
) -> None:
    snapshots = lab_ssh(CLIENT, f"educloud-backup --config {CONFIG} snapshots")
    before = {s["id"] for s in json.loads(snapshots)}
    assert before
    restic = [
        "timeout", "300", "restic", "-r", "rclone:", "--no-cache",
        "-o", "rclone.program=" + shlex.join(client_ssh), "-o", "rclone.args=",
        "forget", "--host", CLIENT, "--keep-last", "1", "--prune",
    ]  # fmt: skip
    password = f"RESTIC_PASSWORD_FILE={shlex.quote(str(config['password_file']))}"
    forget = _ssh(CLIENT, f"{password} {shlex.join(restic)}")
    snapshots = lab_ssh(CLIENT, f"educloud-backup --config {CONFIG} snapshots")
    after = {s["id"] for s in json.loads(snapshots)}
    assert after == before, forget.stdout[-500:] + forget.stderr[-500:]


# The restore drill after these attacks: tests/integration/test_backup_lab.py's
# test_drill_proves_the_backup, which the suite runs after this file (./run.sh test runs
# tests/lab before tests/integration), on the same repository.
