"""Portability (C8): what lets a user's data be handed over before anything is erased.

Nextcloud's own export (user_migration) is checked in test_nextcloud.py once Nextcloud is
installed. Here, on every host that applies the retention periods: the export tool runs,
its exports are kept from other accounts, and the policy the host applies exports every
category that the deployment's policy says must be exported before it is erased.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from educloud.deployment.model import Deployment
from educloud.policy import Policies


@pytest.mark.charter("C8")
def test_exports_ready_before_erase(
    deployment: Deployment,
    connect: Callable[[str], Any],
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    hosts = deployment.in_group("data_rights")
    if not hosts:
        pytest.fail("no host in the data_rights group: nothing exports data before erasing it")
    wanted = sorted(n for n, c in policies.retention.items() if c.get("export_before_erase"))
    problems = []
    for host in hosts:
        target = connect(host.name)
        venv = str(host.variables.get("educloud_tool_venv", "/opt/educloud/venv"))
        exports = str(host.variables.get("retention_exports_dir", "/var/lib/educloud/exports"))
        config = str(host.variables.get("retention_config_dir", "/etc/educloud"))
        tool = target.run("%s/bin/educloud export --help", venv)
        folder = target.file(exports)
        copy = target.file(f"{config}/policies/retention.yml")
        applied = (
            (yaml.safe_load(copy.content_string) or {}).get("categories", {}) if copy.exists else {}
        )
        exported = sorted(n for n, c in applied.items() if c.get("export_before_erase"))
        mode = f"{folder.mode:04o}" if folder.exists else "absent"
        state = "présent" if tool.rc == 0 else "absent ou en panne"
        evidence(
            f"{host.name} : outil d'export {state} ; {exports} {mode} "
            f"({folder.user if folder.exists else '-'}) ; catégories exportées avant "
            f"effacement : {', '.join(exported) or 'aucune'} (politique : {', '.join(wanted)})"
        )
        if tool.rc != 0:
            problems.append(f"{host.name}: the export tool does not run ({tool.rc})")
        if not folder.exists or not folder.is_directory:
            problems.append(f"{host.name}: {exports} is missing")
        elif folder.mode & 0o007:
            problems.append(f"{host.name}: {exports} is open to every account ({mode})")
        missing = sorted(set(wanted) - set(exported))
        if not copy.exists:
            problems.append(f"{host.name}: no policy copy at {copy.path}")
        elif missing:
            problems.append(
                f"{host.name}: the applied policy erases {', '.join(missing)} without export"
            )
    assert not problems, "; ".join(problems)
