"""Behaviour of the load_balancer role on a converged host (testinfra).

The checks of the running balancer read the statistics CSV and apply to any host of the
load_balancer group. The failure drills (a member stopped, a primary moved) act on the
stand-in backends of the molecule scenario (prepare.yml) and run on molecule hosts only.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud.hostscope import setting, skip_unless_in_group

ROLE_DEFAULTS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "defaults" / "main.yml").read_text()
)
CONFIG = "/etc/haproxy/haproxy.cfg"
# Two failed checks at 2 s, plus a check's own timeout: 30 s is ample.
STATE_TIMEOUT_S = 30.0


@pytest.fixture(autouse=True)
def load_balancer_host_only(host):
    """Skip hosts outside the load_balancer group (molecule platforms, mol-*, have no group)."""
    skip_unless_in_group(host.ansible.get_variables(), "load_balancer")


@pytest.fixture
def settings(host) -> dict[str, Any]:
    """The role's variables as the host gets them: defaults, overlaid by the inventory. The
    frontends are rendered: a regional inventory builds them from templates over the other
    hosts' addresses (the password stays as written: it is only ever read on the host)."""
    variables = host.ansible.get_variables()
    values = {
        **ROLE_DEFAULTS,
        **{k: v for k, v in variables.items() if k.startswith("load_balancer_")},
    }
    for name in ("load_balancer_http_frontends", "load_balancer_tcp_frontends"):
        if "{{" in json.dumps(values[name]):
            values[name] = setting(host, name, [])
    return values


@pytest.fixture
def molecule_only(host) -> None:
    """The failure drills stop and change the scenario's stand-in backends."""
    name = str(host.ansible.get_variables().get("inventory_hostname", ""))
    if not name.startswith("mol-"):
        pytest.skip("failure drill of the molecule scenario's stand-in backends")


def http_get(host, url: str) -> tuple[int, str]:
    """Status and body of a GET made on the host itself (the host has no curl)."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
        "    print(r.status); print(r.read().decode(), end='')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    output = host.check_output("python3 -c %s %s", script, url)
    status, _, body = output.partition("\n")
    return int(status), body.strip()


def stats(host, settings) -> dict[tuple[str, str], dict[str, str]]:
    """Rows of the statistics CSV, by (proxy, server)."""
    address, port = settings["load_balancer_stats_address"], settings["load_balancer_stats_port"]
    status, body = http_get(host, f"http://{address}:{port}/stats;csv")
    assert status == 200
    rows = csv.DictReader(io.StringIO(body.removeprefix("# ")))
    return {(row["pxname"], row["svname"]): row for row in rows}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds, failing after STATE_TIMEOUT_S."""
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {STATE_TIMEOUT_S:.0f} s: {what}"
        time.sleep(0.5)


def server_status(host, settings, proxy: str, server: str) -> str:
    return stats(host, settings)[(proxy, server)]["status"]


def wait_status(host, settings, proxy: str, server: str, status: str) -> None:
    wait_until(
        lambda: server_status(host, settings, proxy, server) == status,
        f"{proxy}/{server} is {status}",
    )


def redis_cli(host, settings, address: str, port: int, command: str) -> str:
    """A Redis command, the password passed in the environment (not on the command line)."""
    words = command.split()
    return host.check_output(
        "REDISCLI_AUTH=%s redis-cli -h %s -p %s" + " %s" * len(words),
        settings["load_balancer_redis_password"],
        address,
        str(port),
        *words,
    )


def frontend(host, settings, name: str) -> dict[str, Any]:
    """A declared frontend; the scenario binds one to "{{ ansible_host }}", which testinfra
    reads untemplated."""
    frontends = settings["load_balancer_http_frontends"] + settings["load_balancer_tcp_frontends"]
    declared = next(f for f in frontends if f["name"] == name)
    if "{{" in declared["bind_address"]:
        return {**declared, "bind_address": host.ansible.get_variables()["ansible_host"]}
    return declared


def test_haproxy_enabled_and_running(host):
    assert host.service("haproxy").is_enabled
    assert host.service("haproxy").is_running


def test_config_readable_by_root_and_haproxy_only(host):
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "haproxy", 0o640)


def test_every_declared_server_is_in_the_statistics(host, settings):
    rows = stats(host, settings)
    frontends = settings["load_balancer_http_frontends"] + settings["load_balancer_tcp_frontends"]
    declared = {(f["name"], s["name"]) for f in frontends for s in f["servers"]}
    assert declared <= set(rows), declared - set(rows)


def test_every_backend_has_a_server_up(host, settings):
    rows = stats(host, settings)
    frontends = settings["load_balancer_http_frontends"] + settings["load_balancer_tcp_frontends"]
    down = [f["name"] for f in frontends if rows[(f["name"], "BACKEND")]["status"] != "UP"]
    assert down == []


def test_statistics_and_admin_socket_stay_local(host, settings):
    port = settings["load_balancer_stats_port"]
    listening = {
        s.removeprefix("tcp://").rsplit(":", 1)[0]
        for s in host.socket.get_listening_sockets()
        if s.startswith("tcp://") and s.endswith(f":{port}")
    }
    assert listening == {settings["load_balancer_stats_address"]}
    assert host.file("/run/haproxy/admin.sock").is_socket


@pytest.fixture
def web(host, settings, molecule_only) -> dict[str, Any]:
    return frontend(host, settings, "web")


def test_http_requests_reach_every_server(host, settings, web):
    url = f"http://{web['bind_address']}:{web['bind_port']}/"
    bodies = {http_get(host, url) for _ in range(4)}
    assert bodies == {(200, "served by web2"), (200, "served by web3")}


def test_requests_are_logged_to_the_journal(host, web):
    marker = f"/journal-check-{time.time_ns()}"
    assert http_get(host, f"http://{web['bind_address']}:{web['bind_port']}{marker}")[0] == 404
    wait_until(
        lambda: marker in host.check_output("journalctl -u haproxy --no-pager -n 200 -o cat"),
        f"a journal line of haproxy.service with {marker}",
    )


@pytest.fixture
def web2_stopped(host, settings, web) -> Iterator[None]:
    """Member web2 down (its service and its readiness endpoint), started again afterwards."""
    host.check_output("systemctl stop mol-http@web2 mol-http@web2-health")
    try:
        yield
    finally:
        host.check_output("systemctl start mol-http@web2 mol-http@web2-health")
        wait_status(host, settings, "web", "web2", "UP")


def test_stopped_server_is_marked_down_and_traffic_flows(host, settings, web, web2_stopped):
    wait_status(host, settings, "web", "web2", "DOWN")
    url = f"http://{web['bind_address']}:{web['bind_port']}/"
    assert {http_get(host, url) for _ in range(4)} == {(200, "served by web3")}


def test_only_the_patroni_primary_gets_database_traffic(host, settings, molecule_only):
    db = frontend(host, settings, "db")
    wait_status(host, settings, "db", "db3", "DOWN")
    assert server_status(host, settings, "db", "db2") == "UP"
    assert http_get(host, f"http://{db['bind_address']}:{db['bind_port']}/") == (
        200,
        "served by db2",
    )


@pytest.fixture
def patroni_failover(host, settings) -> Iterator[None]:
    """The fake Patroni leader moves from db2 to db3, and back afterwards."""
    host.check_output("mv /srv/mol-http/db2-patroni/primary /srv/mol-http/db3-patroni/primary")
    try:
        yield
    finally:
        host.check_output("mv /srv/mol-http/db3-patroni/primary /srv/mol-http/db2-patroni/primary")
        wait_status(host, settings, "db", "db2", "UP")
        wait_status(host, settings, "db", "db3", "DOWN")


def test_database_traffic_follows_a_patroni_failover(
    host, settings, molecule_only, patroni_failover
):
    db = frontend(host, settings, "db")
    wait_status(host, settings, "db", "db2", "DOWN")
    wait_status(host, settings, "db", "db3", "UP")
    assert http_get(host, f"http://{db['bind_address']}:{db['bind_port']}/") == (
        200,
        "served by db3",
    )


def test_database_frontend_is_open_to_its_allowed_clients(host, settings, molecule_only):
    """The scenario allows 198.18.0.0/24, where the machine running molecule is."""
    db = frontend(host, settings, "db")
    with socket.create_connection((db["bind_address"], db["bind_port"]), timeout=10):
        pass


def test_redis_traffic_goes_to_the_master(host, settings, molecule_only):
    redis = frontend(host, settings, "redis")
    wait_status(host, settings, "redis", "redis3", "DOWN")
    info = redis_cli(host, settings, redis["bind_address"], redis["bind_port"], "INFO replication")
    assert "role:master" in info


@pytest.fixture
def redis_failover(host, settings) -> Iterator[None]:
    """redis3 promoted and redis2 made its replica (as Sentinel would), and back afterwards."""
    redis_cli(host, settings, "127.0.0.3", 6379, "REPLICAOF NO ONE")
    redis_cli(host, settings, "127.0.0.2", 6379, "REPLICAOF 127.0.0.3 6379")
    try:
        yield
    finally:
        redis_cli(host, settings, "127.0.0.2", 6379, "REPLICAOF NO ONE")
        redis_cli(host, settings, "127.0.0.3", 6379, "REPLICAOF 127.0.0.2 6379")
        wait_status(host, settings, "redis", "redis2", "UP")
        wait_status(host, settings, "redis", "redis3", "DOWN")


def test_redis_traffic_follows_a_failover(host, settings, molecule_only, redis_failover):
    redis = frontend(host, settings, "redis")
    wait_status(host, settings, "redis", "redis2", "DOWN")
    wait_status(host, settings, "redis", "redis3", "UP")
    # Only a master accepts writes: the balanced connection reaches redis3.
    reply = redis_cli(host, settings, redis["bind_address"], redis["bind_port"], "SET lb-check 1")
    assert reply.strip() == "OK"


@pytest.fixture
def vip(host, settings) -> str:
    if not settings["load_balancer_vip"]:
        pytest.skip("no floating address (load_balancer_vip is empty)")
    return str(settings["load_balancer_vip"]).split("/")[0]


def holds_address(host, address: str) -> bool:
    return f" {address}/" in host.check_output("ip -o -4 address show")


def test_keepalived_config_readable_by_root_only(host, vip):
    config = host.file("/etc/keepalived/keepalived.conf")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    assert host.service("keepalived").is_enabled


@pytest.fixture
def haproxy_stopped(host, settings) -> Iterator[None]:
    host.check_output("systemctl stop haproxy")
    try:
        yield
    finally:
        host.check_output("systemctl start haproxy")


def test_floating_address_follows_haproxy(host, molecule_only, vip, haproxy_stopped):
    """The single member holds the address; it gives it up when HAProxy stops."""
    wait_until(lambda: not holds_address(host, vip), f"{vip} released with haproxy stopped")


def test_floating_address_held_with_haproxy_running(host, molecule_only, vip):
    wait_until(lambda: holds_address(host, vip), f"{vip} held with haproxy running")
