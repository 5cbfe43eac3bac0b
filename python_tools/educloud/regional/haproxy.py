"""HAProxy's view of its backends, read and steered through its admin socket over SSH."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError
from educloud.remote import call

ADMIN_SOCKET = "/run/haproxy/admin.sock"
# The runtime API on the load balancer itself: python3 is on every host, socat is not.
_SOCKET_CLIENT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(sys.argv[2].encode() + b'\\n')\n"
    "sys.stdout.write(s.makefile().read())\n"
)


@dataclass(frozen=True)
class ServerState:
    backend: str
    server: str
    status: str  # UP, DOWN, MAINT, "UP 1/2" while a check is changing its mind
    sessions_total: int

    @property
    def up(self) -> bool:
        return self.status == "UP"


def runtime_command(lb: InventoryHost, command: str, *, timeout: float = 30.0) -> str:
    answer = call(lb, ["python3", "-c", _SOCKET_CLIENT, ADMIN_SOCKET, command], timeout=timeout)
    if answer.returncode != 0:
        raise EducloudError(
            f"{lb.name}: HAProxy's runtime API refused {command!r}: {answer.said()}"
        )
    return answer.stdout


def parse_stat(text: str) -> list[ServerState]:
    """`show stat` CSV: one row per server (frontend and backend summary rows left out)."""
    body = text.lstrip("# ")
    rows = csv.DictReader(io.StringIO(body))
    states: list[ServerState] = []
    for row in rows:
        if row.get("svname") in (None, "FRONTEND", "BACKEND"):
            continue
        states.append(
            ServerState(
                backend=row["pxname"],
                server=row["svname"],
                status=row.get("status", ""),
                sessions_total=int(row.get("stot") or 0),
            )
        )
    return states


def servers(lb: InventoryHost, backend: str) -> dict[str, ServerState]:
    states = parse_stat(runtime_command(lb, "show stat"))
    found = {s.server: s for s in states if s.backend == backend}
    if not found:
        raise EducloudError(f"{lb.name}: HAProxy has no backend {backend!r}")
    return found


def set_state(lb: InventoryHost, backend: str, server: str, state: str) -> None:
    """Put a server in 'maint' (no traffic) or back to 'ready'."""
    if state not in ("ready", "maint", "drain"):
        raise EducloudError(f"unknown HAProxy server state {state!r}")
    reply = runtime_command(lb, f"set server {backend}/{server} state {state}").strip()
    if reply:
        raise EducloudError(f"{lb.name}: set server {backend}/{server}: {reply}")
