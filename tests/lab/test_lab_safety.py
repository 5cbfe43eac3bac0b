"""The lab keeps its traffic on this machine (no route out, forwarded packets dropped)."""

from __future__ import annotations

import subprocess

import pytest

from educloud.lab import orchestrate
from educloud.lab.settings import BRIDGE_NAME, NFT_TABLE

pytestmark = pytest.mark.lab


def _on(host: str, command: str) -> subprocess.CompletedProcess[str]:
    argv = [*orchestrate.ssh_command(host), command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_lab_hosts_have_no_default_route(lab_hosts):
    for host in lab_hosts:
        routes = _on(host.name, "ip -4 route show default; ip -6 route show default")
        assert routes.returncode == 0
        assert routes.stdout.strip() == "", f"{host.name} has a default route"


def test_outside_address_is_unroutable_from_lab_hosts(lab_hosts):
    # A route lookup only: no packet is sent anywhere.
    for host in lab_hosts:
        lookup = _on(host.name, "ip route get 192.0.2.1")
        assert lookup.returncode != 0
        assert "unreachable" in lookup.stderr.lower()


def test_host_drops_forwarded_lab_traffic():
    rules = subprocess.run(
        ["nft", "list", "chain", "inet", NFT_TABLE, "forward"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'iifname "{BRIDGE_NAME}" oifname != "{BRIDGE_NAME}"' in rules
    assert f'oifname "{BRIDGE_NAME}" iifname != "{BRIDGE_NAME}"' in rules
    assert rules.count("drop") >= 2


def test_lab_hosts_get_packages_only_through_the_proxy(lab_hosts):
    for host in lab_hosts:
        proxy = _on(host.name, "apt-config dump Acquire::http::Proxy")
        assert '"http://198.18.0.1:3142"' in proxy.stdout
