"""The services of each host are up and run unprivileged (C10, least privilege)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter import services
from educloud.deployment.model import Deployment


@pytest.mark.charter("C10")
def test_services_run_unprivileged(
    host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    host = deployment.host(host_name)
    expected = services.expected_services(host.groups, host.variables)
    if not expected:
        pytest.skip(f"{host_name} runs no service of the stack")
    target = connect(host_name)
    problems = []
    for service in expected:
        active = target.run("systemctl is-active %s", service.unit).stdout.strip()
        pid = target.run("systemctl show -p MainPID --value %s", service.unit).stdout.strip()
        select = "--ppid" if service.workers else "-p"
        users = target.run("ps -o user= %s %s", select, pid or "0").stdout.split()
        evidence(
            f"{host_name} : {service.unit} {active}, processus : {', '.join(sorted(set(users)))}"
        )
        problems += services.service_problems(service, active, users)
    assert not problems, "; ".join(problems)
