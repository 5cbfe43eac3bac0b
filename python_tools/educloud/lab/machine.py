"""One lab host: its root filesystem, its identity, and its systemd-nspawn process."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from educloud.commands import run
from educloud.errors import EducloudError
from educloud.lab.settings import BRIDGE_NAME, LAB_NETWORK, HostSpec, LabPaths

SSH_OPTIONS = (
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "StrictHostKeyChecking=yes",
)


# A host root taken out of the lab, waiting to be deleted (never a host's name: those are
# hostnames, without a dot).
DISCARDED_PREFIX = ".discarded-"


def machine_root(paths: LabPaths, name: str) -> Path:
    return paths.machines / name


def ssh_base(paths: LabPaths, address: str) -> list[str]:
    return [
        "ssh",
        "-i",
        str(paths.ssh_key),
        *SSH_OPTIONS,
        "-o",
        f"UserKnownHostsFile={paths.known_hosts}",
        f"root@{address}",
    ]


def new_ed25519_key(path: Path, comment: str, what: str) -> None:
    """A new ed25519 key pair without a passphrase at `path` (and `path`.pub)."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], what=what)


def ensure_lab_key(paths: LabPaths) -> None:
    """The lab-only SSH key; never used outside the lab."""
    paths.ssh_dir.mkdir(parents=True, exist_ok=True)
    paths.ssh_dir.chmod(0o700)
    if not paths.ssh_key.exists():
        new_ed25519_key(paths.ssh_key, "educloud-lab", "creating the lab SSH key")
    paths.known_hosts.touch(mode=0o600, exist_ok=True)


def _remember_host_key(paths: LabPaths, root: Path, address: str) -> None:
    public = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    lines = [
        line
        for line in paths.known_hosts.read_text().splitlines()
        if line and not line.startswith(f"{address} ")
    ]
    lines.append(f"{address} {public[0]} {public[1]}")
    paths.known_hosts.write_text("\n".join(lines) + "\n")


def create(paths: LabPaths, image: Path, spec: HostSpec) -> bool:
    """Create the host's root from the image unless it exists; True when created."""
    root = machine_root(paths, spec.name)
    marker = root / ".educloud-host"
    if marker.is_file():
        _remember_host_key(paths, root, str(spec.address))
        return False
    paths.machines.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(root.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    run(
        ["cp", "-a", "--reflink=auto", str(image), str(staging)],
        what=f"copying the lab image for {spec.name}",
    )
    _personalise(paths, staging, spec)
    marker_text = f"{spec.name} {spec.address} image={image.name}\n"
    (staging / ".educloud-host").write_text(marker_text)
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    _remember_host_key(paths, root, str(spec.address))
    return True


def _personalise(paths: LabPaths, root: Path, spec: HostSpec) -> None:
    (root / ".educloud-image").unlink(missing_ok=True)
    (root / "etc/hostname").write_text(f"{spec.name}\n")
    (root / "etc/hosts").write_text(
        "# managed by educloud lab\n"
        f"127.0.0.1 localhost\n127.0.1.1 {spec.name}\n{spec.address} {spec.name}.lab {spec.name}\n"
        "::1 localhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    # No Gateway: a lab host has no default route, it can reach only the lab network.
    (root / "etc/systemd/network/10-educloud-lab.network").write_text(
        "# managed by educloud lab: static address, no default route, no IPv6\n"
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={spec.address}/{LAB_NETWORK.prefixlen}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    run(["ssh-keygen", "-A", "-f", str(root)], what=f"creating SSH host keys for {spec.name}")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(Path(str(paths.ssh_key) + ".pub").read_text())
    authorized.chmod(0o600)


def boot(paths: LabPaths, spec: HostSpec) -> subprocess.Popen[bytes]:
    """Start systemd-nspawn for the host in the background."""
    root = machine_root(paths, spec.name)
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = (paths.logs / f"host-{spec.name}.log").open("ab")
    argv = [
        "systemd-nspawn",
        "--boot",
        f"--directory={root}",
        f"--machine={spec.name}",
        # No system D-Bus on the host: do not register with machined, keep our unit.
        "--register=no",
        "--keep-unit",
        f"--network-bridge={BRIDGE_NAME}",
        "--console=passive",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )


def process_matches(pid: int | None, marker: str) -> bool:
    """True when pid is a live (not zombie) process whose command line contains marker.

    Pids recorded by an earlier session may have been reused by another process.
    """
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker.encode() in cmdline.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def is_alive(pid: int | None) -> bool:
    return process_matches(pid, "systemd-nspawn")


def wait_ready(
    paths: LabPaths, spec: HostSpec, alive: Callable[[], bool], timeout: float = 180.0
) -> float:
    """Wait until sshd answers and systemd has finished booting; returns seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    address = str(spec.address)
    while time.monotonic() < deadline:
        if not alive():
            raise EducloudError(
                f"lab host {spec.name} stopped while booting; see {paths.logs}/host-{spec.name}.log"
            )
        with socket.socket() as sock:
            sock.settimeout(1)
            reachable = sock.connect_ex((address, 22)) == 0
        if reachable:
            result = run(
                [*ssh_base(paths, address), "systemctl", "is-system-running", "--wait"],
                what=f"asking {spec.name} whether it has booted",
                check=False,
                timeout=max(5.0, deadline - time.monotonic()),
            )
            if result.stdout.strip() in {"running", "degraded"}:
                return time.monotonic() - start
        time.sleep(0.5)
    raise EducloudError(f"lab host {spec.name} did not boot within {timeout:.0f} s")


def stop(pid: int | None, timeout: float = 60.0) -> None:
    """Ask the container to power off (nspawn turns SIGTERM into an orderly shutdown)."""
    if not is_alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    if not _gone_within(pid, timeout):
        os.killpg(pid, signal.SIGKILL)


def _gone_within(pid: int, timeout: float) -> bool:
    """Whether the nspawn process `pid` ended within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.2)
    return False


def power_cut(pid: int | None, timeout: float = 30.0) -> None:
    """Kill the container at once, as a power cut would: SIGKILL to its init, which takes
    every process of its PID namespace with it (no shutdown, nothing flushed)."""
    if not is_alive(pid):
        return
    assert pid is not None
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    if not _gone_within(pid, timeout):
        os.kill(pid, signal.SIGKILL)


def discard(paths: LabPaths, name: str) -> None:
    """Take the host's root (and an interrupted copy of it) out of the lab at once: a rename
    to a name no host has, so that the lab's lock is held for a moment, not for the deletion
    of a whole Debian tree; `purge_discarded` deletes it afterwards."""
    root = machine_root(paths, name)
    for path in (root, root.with_name(root.name + ".partial")):
        if path.exists():
            path.rename(paths.machines / f"{DISCARDED_PREFIX}{name}-{secrets.token_hex(4)}")


def purge_discarded(paths: LabPaths) -> None:
    """Delete the roots `discard` took out (any process's: a second purge racing this one,
    or a host created meanwhile, is left alone)."""
    if paths.machines.is_dir():
        for path in paths.machines.glob(f"{DISCARDED_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
