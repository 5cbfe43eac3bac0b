"""Patroni's view of the PostgreSQL cluster (its REST API on a member, over SSH)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError
from educloud.remote import call

REST_PORT = 8008
_GET = (
    "import sys, urllib.request\n"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n"
)


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # leader, replica, sync_standby
    state: str  # running, streaming, starting, stopped...
    host: str
    timeline: int
    lag: int | None  # bytes behind the leader; None for the leader or when unknown


def parse_cluster(document: dict[str, Any]) -> list[Member]:
    members: list[Member] = []
    for item in document.get("members", []):
        lag = item.get("lag")
        members.append(
            Member(
                name=str(item.get("name")),
                role=str(item.get("role")),
                state=str(item.get("state")),
                host=str(item.get("host")),
                timeline=int(item.get("timeline") or 0),
                lag=lag if isinstance(lag, int) else None,
            )
        )
    return members


def cluster(member: InventoryHost, *, port: int = REST_PORT) -> list[Member]:
    """The members as one member's Patroni sees them (GET /cluster on its loopback)."""
    url = f"http://127.0.0.1:{port}/cluster"
    answer = call(member, ["python3", "-c", _GET, url], timeout=30)
    if answer.returncode != 0:
        raise EducloudError(f"{member.name}: Patroni's REST API did not answer: {answer.said()}")
    try:
        document = json.loads(answer.stdout)
    except json.JSONDecodeError:
        raise EducloudError(f"{member.name}: Patroni's /cluster is not JSON") from None
    return parse_cluster(document)


def leader(members: list[Member]) -> Member | None:
    leaders = [m for m in members if m.role in ("leader", "standby_leader")]
    return leaders[0] if len(leaders) == 1 else None
