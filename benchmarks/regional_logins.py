"""Benchmark: logins per second through the regional load balancer, with one Keycloak node
and with two, in one run (issue #9).

    .venv/bin/python benchmarks/regional_logins.py [--logins 120] [--concurrency 6]
        [--max-seconds 240] [--users N]

Needs the regional lab, deployed: `educloud lab up --variant regional` then
`educloud deploy --inventory inventories/lab-regional`. Each login is the whole browser
flow a pupil goes through (authorization request, login form, password, code exchange with
PKCE: four HTTPS requests through nginx and HAProxy on the load balancer). The users are
created in the lab realm first and deleted at the end.

1. one node: HAProxy's runtime API puts every Keycloak node but the first in maintenance;
2. two nodes: all back in rotation.
Each way sends at most --logins logins and stops at --max-seconds whatever happens; only
lab addresses are targeted (educloud.netpin refuses anything else). Prints the rate, the
median and 95th percentile latency and the failures of each way, the CPU time Keycloak
spent per login (read from its process on each node: the figure the sizing guide scales
from, docs/sizing.md), then the ratio.
"""

from __future__ import annotations

import argparse
import queue
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError
from educloud.lab.keycloak_access import LabKeycloak, admin_client, disposable_user, keycloak_info
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.oidc_login import authorization_code_login
from educloud.paths import inventories_dir
from educloud.regional import haproxy, topology
from educloud.regional.probe import LoadResult, run_load
from educloud.remote import call

BACKEND = "keycloak"


@contextmanager
def lab_users(kc: LabKeycloak, count: int) -> Iterator[list[tuple[str, str]]]:
    """`count` pupils in the lab realm for the run, deleted afterwards."""
    admin = admin_client(kc)
    with ExitStack() as stack:
        users = [stack.enter_context(disposable_user(admin, "bench")) for _ in range(count)]
        yield [(u.username, u.password) for u in users]


def login_request(kc: LabKeycloak, users: list[tuple[str, str]]) -> Callable[[], None]:
    """One pupil's whole login; a user is never in two logins at once (a queue lends them)."""
    idle: queue.Queue[tuple[str, str]] = queue.Queue()
    for user in users:
        idle.put(user)

    def login() -> None:
        username, password = idle.get()
        try:
            outcome = authorization_code_login(
                public_url=kc.public_url,
                realm=kc.realm,
                client_id=kc.client_id,
                client_secret=kc.client_secret,
                redirect_uri=kc.redirect_uri,
                username=username,
                password=password,
                verify=kc.ca_file,
            )
        finally:
            idle.put((username, password))
        if not outcome.ok:
            raise RuntimeError(f"login refused ({outcome.status})")

    return login


# CPU seconds the keycloak account's processes (kc.sh and its JVM) used so far.
_CPU_SECONDS = (
    "import os, pwd\n"
    "uid, total = pwd.getpwnam('keycloak').pw_uid, 0\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        if os.stat(f'/proc/{pid}').st_uid != uid:\n"
    "            continue\n"
    "        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
    "    except OSError:\n"
    "        continue\n"
    "    total += int(fields[11]) + int(fields[12])\n"
    "print(total / os.sysconf('SC_CLK_TCK'))\n"
)


def keycloak_cpu_seconds(nodes: list[InventoryHost]) -> float:
    total = 0.0
    for node in nodes:
        answer = call(node, ["python3", "-c", _CPU_SECONDS], timeout=30)
        if answer.returncode != 0:
            raise EducloudError(f"{node.name}: cannot read Keycloak's CPU time: {answer.said()}")
        total += float(answer.stdout.strip())
    return total


def show(label: str, result: LoadResult) -> None:
    print(
        f"{label:<10} {result.completed:>5} logins in {result.seconds:6.1f} s = "
        f"{result.rate:6.2f}/s   median {result.median * 1000:6.0f} ms   "
        f"p95 {result.percentile(0.95) * 1000:6.0f} ms   failed {result.failed}"
    )
    for reason, count in result.reasons[:3]:
        print(f"{'':<10} {count} x {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    parser.add_argument("--users", type=int, default=0, help="default: 2 x concurrency")
    args = parser.parse_args()
    args.users = max(args.users, args.concurrency) if args.users else 2 * args.concurrency
    inventory = inventories_dir() / "lab-regional"
    regional = topology.load(inventory)
    kc = keycloak_info(inventory, LabPaths.default().root / "ca-regional.crt")
    lb = regional.load_balancer
    nodes = [n.name for n in regional.keycloak_nodes]
    results: dict[int, LoadResult] = {}
    cpu: dict[int, float] = {}
    with pinned_names(kc.pinned), lab_users(kc, args.users) as users:
        login = login_request(kc, users)
        run_load(login, total=args.concurrency * 2, concurrency=args.concurrency, max_seconds=60)
        for in_service in (1, len(nodes)):
            for name in nodes[1:]:
                haproxy.set_state(lb, BACKEND, name, "maint" if in_service == 1 else "ready")
            try:
                before = keycloak_cpu_seconds(regional.keycloak_nodes)
                results[in_service] = run_load(
                    login,
                    total=args.logins,
                    concurrency=args.concurrency,
                    max_seconds=args.max_seconds,
                )
                cpu[in_service] = keycloak_cpu_seconds(regional.keycloak_nodes) - before
            finally:
                for name in nodes[1:]:
                    haproxy.set_state(lb, BACKEND, name, "ready")
    print(f"logins through {lb.name} ({args.concurrency} concurrent, at most {args.logins})")
    for in_service, result in results.items():
        show(f"{in_service} node{'s' if in_service > 1 else ''}", result)
        if result.completed:
            per_login = cpu[in_service] / result.completed
            print(
                f"{'':<10} Keycloak CPU: {per_login * 1000:.0f} ms per login "
                f"= {1 / per_login:.1f} logins/s per fully used core"
            )
    one, many = results[1], results[len(nodes)]
    if one.rate:
        print(f"ratio {len(nodes)} nodes / 1 node: {many.rate / one.rate:.2f}")
    return 0 if all(r.failed == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
