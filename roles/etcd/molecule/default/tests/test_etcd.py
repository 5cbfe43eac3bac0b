"""Behaviour of the etcd role on converged members (testinfra).

Molecule runs these checks on its three temporary hosts; `educloud summary` runs the same
file against an inventory, where only the hosts of the etcd group are in scope.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from educloud.hostscope import skip_unless_in_group

ROLE_DEFAULTS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "defaults" / "main.yml").read_text()
)
LOCAL_ENDPOINT = "http://127.0.0.1:2379"


@pytest.fixture(autouse=True)
def etcd_host_only(host):
    """Skip hosts outside the etcd group (molecule platforms, named mol-*, are in scope)."""
    skip_unless_in_group(host.ansible.get_variables(), "etcd")


@pytest.fixture
def variables(host) -> dict[str, Any]:
    return host.ansible.get_variables()


@pytest.fixture
def settings(variables) -> dict[str, Any]:
    """The role's plain settings as the host gets them: defaults, overlaid by the inventory."""
    overrides = {k: v for k, v in variables.items() if k.startswith("etcd_")}
    return {**ROLE_DEFAULTS, **overrides}


@pytest.fixture
def members(variables) -> list[str]:
    """The declared members: etcd_members, or the etcd group as the role's default."""
    declared = variables.get("etcd_members")
    if isinstance(declared, list):
        return declared
    return list(variables["groups"]["etcd"])


def etcdctl(host, *args: str) -> Any:
    """JSON answer of etcdctl (v3 API) asked through the member's loopback endpoint."""
    placeholders = " ".join(["%s"] * len(args))
    command = f"etcdctl --endpoints={LOCAL_ENDPOINT} {placeholders} --write-out=json"
    return json.loads(host.check_output(command, *args))


def test_service_enabled_and_running(host):
    assert host.service("etcd").is_enabled
    assert host.service("etcd").is_running


def test_cluster_has_every_declared_member(host, members):
    listed = etcdctl(host, "member", "list")["members"]
    assert sorted(member.get("name", "") for member in listed) == sorted(members)


def test_every_member_healthy(host, members):
    # --cluster asks every member the cluster lists, over its advertised client URL.
    health = etcdctl(host, "endpoint", "health", "--cluster")
    healthy = [entry for entry in health if entry.get("health") is True]
    assert len(healthy) == len(members), health


def test_one_leader_for_the_whole_cluster(host, members):
    status = etcdctl(host, "endpoint", "status", "--cluster")
    leaders = {entry["Status"]["leader"] for entry in status}
    cluster_ids = {entry["Status"]["header"]["cluster_id"] for entry in status}
    assert len(status) == len(members)
    assert len(leaders) == 1
    assert len(cluster_ids) == 1


def test_write_on_one_member_read_on_every_member(host, variables, members):
    key = f"/educloud-verify/{variables['inventory_hostname']}"
    host.check_output(f"etcdctl --endpoints={LOCAL_ENDPOINT} put %s written", key)
    try:
        # A linearizable read through each member's own endpoint goes through Raft.
        for entry in etcdctl(host, "endpoint", "status", "--cluster"):
            endpoint = entry["Endpoint"]
            value = host.check_output(
                "etcdctl --endpoints=%s get %s --print-value-only", endpoint, key
            )
            assert value == "written", endpoint
    finally:
        host.run(f"etcdctl --endpoints={LOCAL_ENDPOINT} del %s", key)


def test_v2_api_is_off(host):
    # The v2 keys endpoint answers 404 when --enable-v2 is false.
    result = host.run(f"curl -s -o /dev/null -w '%%{{http_code}}' {LOCAL_ENDPOINT}/v2/keys")
    if result.rc != 0 and not result.stdout:
        pytest.skip("curl is not installed")
    assert result.stdout != "200"


def test_listens_on_cluster_address_and_loopback_only(host, variables, settings):
    address = variables.get("educloud_private_address", variables["ansible_host"])
    listening: dict[int, set[str]] = {}
    for socket in host.socket.get_listening_sockets():
        if socket.startswith("tcp://"):
            ip, port = socket.removeprefix("tcp://").rsplit(":", 1)
            listening.setdefault(int(port), set()).add(ip)
    assert listening.get(settings["etcd_client_port"]) == {address} | {"127.0.0.1"}
    assert listening.get(settings["etcd_peer_port"]) == {address}


def test_data_dir_private_to_etcd(host, settings):
    data = host.file(settings["etcd_data_dir"])
    assert data.is_directory
    assert data.user == "etcd"
    assert data.mode & 0o077 == 0


def test_firewall_opens_etcd_to_members_and_declared_clients(host, settings):
    chain = host.run("nft list chain inet educloud roles_input")
    if chain.rc != 0:
        pytest.skip("the common role's firewall (table inet educloud) is not loaded")
    # The members' addresses as the cluster itself knows them (their peer URLs).
    addresses = {
        urlsplit(url).hostname
        for member in etcdctl(host, "member", "list")["members"]
        for url in member.get("peerURLs", [])
    }
    peer_sources = set()
    client_sources = set()
    for line in chain.stdout.splitlines():
        if " saddr " not in line:
            continue
        source = line.split(" saddr ", 1)[1].split()[0]
        if str(settings["etcd_peer_port"]) in line:
            peer_sources.add(source)
        if str(settings["etcd_client_port"]) in line:
            client_sources.add(source)
    declared = {
        address.removesuffix("/32") for address in settings["etcd_client_allowed_addresses"]
    }
    assert peer_sources == addresses
    assert client_sources == addresses | declared
