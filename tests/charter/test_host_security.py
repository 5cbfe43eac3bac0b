"""Firewall, SSH and security updates on every server (C10)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import egress, hostconfig
from educloud.deployment.model import SSH_SETTINGS


@pytest.mark.charter("C10")
def test_inbound_default_deny(
    host_name: str,
    connect: Callable[[str], Any],
    inventory_value: Callable[[str, str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Every input hook refuses by default, and new SSH connections are accepted from the
    inventory's SSH networks only (on the backup target: the administrators, the backup
    clients and the restore drill's hosts, never the whole network; issue #29)."""
    ruleset = json.loads(connect(host_name).check_output("nft -j list ruleset"))
    ssh = inventory_value(host_name, SSH_SETTINGS)
    networks = ssh["networks"] if isinstance(ssh["networks"], list) else [ssh["networks"]]
    evidence(
        f"{host_name} : chaînes d'entrée {egress.describe_chains(ruleset, 'input')} ; "
        f"SSH (port {ssh['port']}) permis depuis {', '.join(str(n) for n in networks)}"
    )
    problems = egress.inbound_problems(ruleset, int(ssh["port"]), [str(n) for n in networks])
    assert not problems, "; ".join(problems)


def _sshd_connections(admin_networks: list[str]) -> list[str]:
    """No connection (the global settings), then root and another account from an outside
    address (TEST-NET-3) and from the first admin network's first address."""
    outside = "203.0.113.7"
    networks = [ipaddress.ip_network(n, strict=False) for n in admin_networks]
    admin = next((str(n.network_address) for n in networks if n.version == 4), outside)
    return [
        "",
        f"user=root,host=outside.invalid,addr={outside}",
        f"user=root,host=admin.invalid,addr={admin}",
        f"user=nobody,host=outside.invalid,addr={outside}",
    ]


@pytest.mark.charter("C10")
def test_ssh_hardened(
    host_name: str,
    connect: Callable[[str], Any],
    inventory_value: Callable[[str, str], Any],
    evidence: Callable[[str], None],
) -> None:
    target = connect(host_name)
    networks = inventory_value(host_name, SSH_SETTINGS)["networks"]
    keys = (
        "passwordauthentication",
        "kbdinteractiveauthentication",
        "permitrootlogin",
        "maxauthtries",
    )
    problems: list[str] = []
    # The global settings, then as sshd evaluates them for connections (its Match blocks):
    # root and another account, from an outside address and from the admin network's.
    for spec in _sshd_connections(networks if isinstance(networks, list) else [networks]):
        option = f" -C {spec}" if spec else ""
        settings = hostconfig.parse_sshd_t(target.check_output(f"sshd -T{option}"))
        evidence(
            f"{host_name} : sshd -T{option} " + ", ".join(f"{k} {settings.get(k)}" for k in keys)
        )
        for problem in hostconfig.sshd_problems(settings):
            said = f"{problem} (for {spec})" if spec else problem
            if said not in problems:
                problems.append(said)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_security_updates_automatic(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    target = connect(host_name)
    periodic = target.run("apt-config shell UU APT::Periodic::Unattended-Upgrade").stdout.strip()
    timer = target.run("systemctl is-enabled apt-daily-upgrade.timer").stdout.strip()
    installed = target.package("unattended-upgrades").is_installed
    evidence(
        f"{host_name} : unattended-upgrades installé={installed}, {periodic}, minuterie {timer}"
    )
    assert installed, "unattended-upgrades is not installed"
    assert periodic == "UU='1'", f"APT::Periodic::Unattended-Upgrade is {periodic!r}"
    assert timer == "enabled", f"apt-daily-upgrade.timer is {timer}"
