"""Issue #29, finding 8, tried again the way the audit did: the deployment's hosts reach each
other only on the services they use, and the backup target takes SSH only from the
administrators, its clients and the restore drill's hosts.

- From edu1, bak1's listening ports other than SSH (a listener started on a high port for
  the test, and whatever else listens there), as root and as nobody: refused by edu1's own
  output chain at once, not left to bak1's input chain (before the fix every port of a peer
  was open on the way out). SSH to bak1, the backups' path, still connects.
- From a lab address that is neither an administrator's nor a backup client's (an extra
  address on the lab's bridge, on this machine): SSH to bak1 is dropped, and bak1's drop
  counter counts it; from the administrators' address, on the same path, it connects.
The charter's checks read the rulesets (tests/charter/test_egress.py, C10 and C5;
test_host_security.py, C10); this test stays independent of that code.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from lab_shell import lab_ssh

pytestmark = pytest.mark.lab

CLIENT = "edu1"
TARGET = "bak1"
TARGET_ADDRESS = "198.18.0.12"
SSH_PORT = 22
LISTENER_PORT = 47011
LISTENER_UNIT = "educloud-attack-listener"
# The lab's bridge on this machine and an address of the lab network that is no host, no
# administrator (198.18.0.1), no backup client, not the drill's range (.100-.199) nor the
# decoy (.254).
BRIDGE = "eclab0"
OUTSIDER = "198.18.0.250"
ADMIN = "198.18.0.1"
# How a connection refused by the sending host's own firewall fails (reject with ICMP
# administratively prohibited, or a drop in the output path).
REFUSED_BY_OWN_FIREWALL = {"EACCES", "EHOSTUNREACH", "EPERM"}

PROBE = r"""
import errno, json, socket, sys
results = []
for port in json.loads(sys.argv[2]):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((sys.argv[1], port))
        outcome = "connected"
    except socket.timeout:
        outcome = "timeout"
    except OSError as e:
        outcome = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
    results.append([port, outcome])
print(json.dumps(results))
"""


def _wait_for(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.5)


def _listening_ports(host: str) -> set[int]:
    """TCP ports something listens on at `host`, on an address other hosts can reach."""
    ports = set()
    for line in lab_ssh(host, "ss -Hltn").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _, port = fields[3].rpartition(":")
        if address.strip("[]").startswith(("127.", "::1")):
            continue  # loopback only: no other host could reach it anyway
        ports.add(int(port))
    return ports


@pytest.fixture
def listener() -> Iterator[int]:
    """A web server on bak1's high port for the test's duration (a transient unit)."""
    lab_ssh(
        TARGET,
        f"systemctl stop {LISTENER_UNIT} 2>/dev/null; systemctl reset-failed {LISTENER_UNIT} "
        f"2>/dev/null; systemd-run --unit {LISTENER_UNIT} --property=DynamicUser=yes "
        f"python3 -m http.server {LISTENER_PORT} --bind 0.0.0.0 "
        "--directory /usr/share/common-licenses",
    )
    try:
        _wait_for(
            f"the listener on {TARGET}:{LISTENER_PORT}",
            lambda: LISTENER_PORT in _listening_ports(TARGET),
        )
        yield LISTENER_PORT
    finally:
        lab_ssh(TARGET, f"systemctl stop {LISTENER_UNIT} || true")


def _probe_from(host: str, ports: list[int], user: str) -> dict[int, str]:
    command = (
        f"runuser -u {user} -- python3 -c '{PROBE}' {TARGET_ADDRESS} '{json.dumps(ports)}'"
        if user != "root"
        else f"python3 -c '{PROBE}' {TARGET_ADDRESS} '{json.dumps(ports)}'"
    )
    return {int(port): str(outcome) for port, outcome in json.loads(lab_ssh(host, command))}


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_peer_ports_other_than_ssh_refused_by_the_clients_firewall(
    listener: int, user: str
) -> None:
    ports = sorted((_listening_ports(TARGET) | {listener}) - {SSH_PORT})
    # Something answers on bak1 itself: the refusal below is the firewall's, not an
    # absent server's.
    assert "connected" in lab_ssh(
        TARGET,
        f'python3 -c \'import socket; socket.create_connection(("{TARGET_ADDRESS}", '
        f'{listener}), 5); print("connected")\'',
    )
    outcomes = _probe_from(CLIENT, [*ports, SSH_PORT], user)
    assert outcomes[SSH_PORT] == "connected", (
        f"{CLIENT} -> {TARGET}:{SSH_PORT} (the backups' path): {outcomes[SSH_PORT]}"
    )
    let_out = {p: o for p, o in outcomes.items() if p in ports and o not in REFUSED_BY_OWN_FIREWALL}
    assert not let_out, (
        f"as {user}, {CLIENT}'s firewall let out connections to {TARGET} on ports other than "
        f"SSH (outcome per port; a timeout means bak1's input refused what edu1 let out): "
        f"{let_out}"
    )


def _drop_count(host: str) -> int:
    """Packets the final drop rule of the host's input chain has counted."""
    listed = json.loads(lab_ssh(host, "nft -j list chain inet educloud input"))
    total = 0
    for item in listed["nftables"]:
        exprs = item.get("rule", {}).get("expr", [])
        if any("drop" in e for e in exprs):
            total += sum(int(e["counter"]["packets"]) for e in exprs if "counter" in e)
    return total


def _connect_from(source: str) -> str:
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind((source, 0))
        try:
            sock.connect((TARGET_ADDRESS, SSH_PORT))
            return "connected"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc.errno))


@pytest.fixture
def outsider_address() -> Iterator[str]:
    """OUTSIDER on the lab's bridge of this machine, for the test's duration."""
    shown = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", BRIDGE], capture_output=True, text=True
    )
    if shown.returncode != 0:
        pytest.fail(f"no {BRIDGE} on this machine: is the lab up? {shown.stderr.strip()}")
    if f" {OUTSIDER}/" in shown.stdout:
        pytest.fail(f"{OUTSIDER} is already on {BRIDGE}: left by an earlier run? remove it")
    subprocess.run(["ip", "addr", "add", f"{OUTSIDER}/32", "dev", BRIDGE], check=True)
    try:
        yield OUTSIDER
    finally:
        subprocess.run(["ip", "addr", "del", f"{OUTSIDER}/32", "dev", BRIDGE], check=False)


def test_ssh_to_the_backup_target_refused_from_other_lab_addresses(outsider_address: str) -> None:
    assert _connect_from(ADMIN) == "connected", f"SSH to {TARGET} from {ADMIN} (administrators)"
    before = _drop_count(TARGET)
    outcome = _connect_from(outsider_address)
    assert outcome != "connected", (
        f"{TARGET} accepted SSH from {outsider_address}, neither an administrator nor a client"
    )
    # The SYN and its retransmissions reached bak1 and were dropped by its input chain.
    assert _drop_count(TARGET) > before, (
        f"SSH from {outsider_address} failed ({outcome}) but {TARGET}'s input drop counter did "
        "not move: something else refused it, the test proves nothing"
    )
