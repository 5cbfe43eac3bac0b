"""Firewall, SSH and security updates on every server (C10)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import egress, hostconfig


@pytest.mark.charter("C10")
def test_inbound_default_deny(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    ruleset = json.loads(connect(host_name).check_output("nft -j list ruleset"))
    evidence(f"{host_name} : chaînes d'entrée {egress.describe_chains(ruleset, 'input')}")
    problems = egress.inbound_problems(ruleset)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_ssh_hardened(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    settings = hostconfig.parse_sshd_t(connect(host_name).check_output("sshd -T"))
    keys = (
        "passwordauthentication",
        "kbdinteractiveauthentication",
        "permitrootlogin",
        "maxauthtries",
    )
    evidence(f"{host_name} : sshd -T " + ", ".join(f"{k} {settings.get(k)}" for k in keys))
    problems = hostconfig.sshd_problems(settings)
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
