"""Firewall, SSH and security updates on every server (C10)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from educloud import policy
from educloud.charter import egress, hostconfig, security_updates
from educloud.deployment.model import SSH_SETTINGS
from educloud.policy import Policies


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


@pytest.mark.charter("C10")
def test_security_updates_applied_in_time(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    """No security update Debian published has waited on the host longer than
    policies/security.yml allows (each is named), the host's list of them is recent enough
    to know, and its record of them is kept. How the wait is measured, and why a deleted
    record or a stopped hook fails instead of passing: educloud.charter.security_updates."""
    allowed = policy.load_security(policies.directory).max_pending_days
    target = connect(host_name)
    # This checkout's copy of the tool, not the host's: it only reads (`observe`).
    observed = target.run("python3 -c %s observe", security_updates.tool_source())
    assert observed.rc == 0, (
        f"cannot list the pending security updates on {host_name}: "
        f"{(observed.stderr or observed.stdout).strip()[-300:]}"
    )
    live = security_updates.parse_observation(json.loads(observed.stdout))
    kept = target.file(security_updates.record_path())
    record = security_updates.parse_record(kept.content_string if kept.exists else "")
    found = security_updates.assess(
        live,
        record.entries,
        max_pending_days=allowed,
        now=datetime.now(UTC),
        record_path=security_updates.record_path(),
    )
    evidence(security_updates.evidence(host_name, found, record, allowed))
    assert not found.problems, "; ".join(found.problems)
