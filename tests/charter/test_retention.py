"""Retention periods of policies/retention.yml in force on every server (C7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import hostconfig
from educloud.charter.deployment import Deployment
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


@pytest.mark.charter("C7")
def test_retention_applied_daily_and_journaled(
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """The data_rights role's timer applies retention.yml every day; its last run did not
    fail, and its hash-chained journal verifies (`educloud retention journal verify`)."""
    hosts = deployment.in_group("data_rights")
    if not hosts:
        pytest.fail("no host in the data_rights group: nothing applies the retention periods")
    problems = []
    for host in hosts:
        target = connect(host.name)
        config = str(host.variables.get("data_rights_config_dir", "/etc/educloud"))
        venv = str(host.variables.get("data_rights_tool_venv", "/opt/educloud/venv"))
        timer = target.service("educloud-retention.timer")
        last = dict(
            line.split("=", 1)
            for line in target.check_output(
                "systemctl show educloud-retention.service -p Result -p ExecMainStatus "
                "-p ExecMainExitTimestamp"
            ).splitlines()
            if "=" in line
        )
        journal = target.run(
            "%s/bin/educloud retention journal verify --config %s/retention.yml",
            venv,
            config,
        )
        said = " ".join((journal.stdout + journal.stderr).split())[-200:]
        evidence(
            f"{host.name} : educloud-retention.timer "
            f"{'activé' if timer.is_enabled else 'désactivé'}, "
            f"{'en attente' if timer.is_running else 'arrêté'} ; dernier passage : "
            f"{last.get('Result')} (code {last.get('ExecMainStatus')}, "
            f"{last.get('ExecMainExitTimestamp') or 'jamais'}) ; journal : {said}"
        )
        if not (timer.is_enabled and timer.is_running):
            problems.append(f"{host.name}: educloud-retention.timer is not enabled and waiting")
        if last.get("Result") != "success":
            problems.append(f"{host.name}: the last retention run ended {last.get('Result')}")
        if journal.rc == 1:
            problems.append(f"{host.name}: the retention journal does not verify: {said}")
        elif journal.rc not in (0, 2) or (journal.rc == 2 and "no journal here" not in said):
            problems.append(f"{host.name}: cannot check the retention journal: {said}")
    assert not problems, "; ".join(problems)
