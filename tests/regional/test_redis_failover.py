"""Redis with Sentinel behind HAProxy (issue #9): the master's Redis stops, the Sentinels
promote a replica, HAProxy sends the writes to it, and the old master comes back as a
replica of the new one."""

from __future__ import annotations

import contextlib
import secrets
import time

import pytest

from educloud.errors import EducloudError
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.regional import haproxy, redis
from educloud.regional.topology import REDIS, Regional, private_address
from educloud.remote import call

pytestmark = pytest.mark.regional
BACKEND = "redis"
PORT = 6379


def _roles(regional: Regional, password: str) -> dict[str, redis.Replication]:
    lb = regional.load_balancer
    found: dict[str, redis.Replication] = {}
    for node in regional.group(REDIS):
        with contextlib.suppress(EducloudError):  # a stopped server has no role
            found[node.name] = redis.replication(lb, private_address(node), password)
    return found


def test_a_replica_takes_over_when_the_master_stops(regional: Regional, record_measurement) -> None:
    password = lab_secrets.read(LabPaths.default())["vault_redis_password"]
    lb = regional.load_balancer
    frontend = private_address(lb)
    roles = _roles(regional, password)
    masters = [name for name, r in roles.items() if r.role == "master"]
    assert len(masters) == 1, f"not one master before the drill: {roles}"
    old = regional.host(masters[0])
    assert haproxy.servers(lb, BACKEND)[old.name].up
    assert redis.write_through(lb, frontend, PORT, password, f"drill-{secrets.token_hex(4)}")

    # Stopped, not killed: Debian's unit restarts a killed redis-server at once.
    stopped = call(old, ["systemctl", "stop", "redis-server"], timeout=60)
    assert stopped.returncode == 0, stopped.said()
    start = time.monotonic()
    promoted = switched = None
    new = None
    try:
        while time.monotonic() - start < 90 and switched is None:
            roles = _roles(regional, password)
            masters = [n for n, r in roles.items() if r.role == "master" and n != old.name]
            if masters and promoted is None:
                promoted, new = time.monotonic() - start, masters[0]
            if new is not None and haproxy.servers(lb, BACKEND)[new].up:
                switched = time.monotonic() - start
            time.sleep(0.5)
        assert new is not None, "no replica was promoted in 90 s"
        assert switched is not None, f"HAProxy still does not send clients to {new}"
        assert redis.write_through(lb, frontend, PORT, password, f"drill-{secrets.token_hex(4)}")
    finally:
        started = call(old, ["systemctl", "start", "redis-server"], timeout=60)
        assert started.returncode == 0, started.said()
    restart = time.monotonic()
    rejoined = None
    while time.monotonic() - restart < 90:
        back = _roles(regional, password).get(old.name)
        if (
            back
            and back.role == "slave"
            and back.master_host == private_address(regional.host(new))
        ):
            rejoined = time.monotonic() - restart
            break
        time.sleep(1)
    record_measurement(
        "redis_master_loss",
        {
            "old_master": old.name,
            "new_master": new,
            "promoted_after_s": round(promoted or 0, 1),
            "haproxy_switched_after_s": round(switched, 1),
            "rejoined_after_s": None if rejoined is None else round(rejoined, 1),
        },
    )
    assert rejoined is not None, f"{old.name} did not come back as a replica of {new}"
    assert not haproxy.servers(lb, BACKEND)[old.name].up  # a replica gets no client
