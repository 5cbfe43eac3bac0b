"""Retention periods of policies/retention.yml in force on every server (C7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import hostconfig
from educloud.policy import Policies


@pytest.mark.charter("C7")
def test_journald_retention(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    days = int(policies.retention["system_logs"]["retention_days"])
    config = connect(host_name).check_output("systemd-analyze cat-config systemd/journald.conf")
    settings = [
        line
        for line in config.splitlines()
        if "MaxRetentionSec" in line and not line.startswith("#")
    ]
    evidence(
        f"{host_name} : {settings[-1] if settings else 'MaxRetentionSec absent'} "
        f"(politique : {days} jours)"
    )
    problems = hostconfig.journald_retention_problems(config, days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_log_rotation_age(
    host_name: str,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    days = int(policies.retention["web_logs"]["retention_days"])
    config = connect(host_name).file("/etc/logrotate.conf").content_string
    evidence(
        f"{host_name} : /etc/logrotate.conf "
        + " ".join(
            line.strip()
            for line in config.splitlines()
            if line.strip().startswith(("maxage", "rotate"))
        )
        + f" (politique : {days} jours)"
    )
    problems = hostconfig.logrotate_problems(config, days)
    assert not problems, "; ".join(problems)
