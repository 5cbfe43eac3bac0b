"""Which hosts a role's host checks apply to (shared by every role's testinfra tests).

The same test files run in a role's molecule scenario, whose temporary lab hosts are
named mol-* and belong to no group, and through `educloud summary` against a whole
inventory, where only the hosts of the role's group are in scope.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from educloud import policy

MOLECULE_PREFIX = "mol-"


def in_scope(variables: dict[str, Any], group: str, platform: str | None = None) -> bool:
    """Whether a host runs `group`'s checks. A scenario with several platforms, each
    playing another part, names the one in scope (`platform`); otherwise every molecule
    platform is."""
    name = str(variables.get("inventory_hostname", ""))
    if name.startswith(MOLECULE_PREFIX):
        return platform is None or name == platform
    return group in variables.get("group_names", [])


def skip_unless_in_group(
    variables: dict[str, Any], group: str, platform: str | None = None
) -> None:
    """Skip the current test on a host outside `group` (molecule platforms are in scope,
    or only `platform` when given)."""
    if not in_scope(variables, group, platform):
        pytest.skip(f"{variables.get('inventory_hostname')} is not in the {group} group")


def policies(variables: dict[str, Any]) -> policy.Policies:
    """The policies the host's deployment applies: its inventory's own copy
    (`educloud_policies_dir`, when written as a path) or the repository's (molecule's
    scenarios, whose value is a template of the repository's path)."""
    directory = variables.get("educloud_policies_dir")
    if isinstance(directory, str) and directory and "{{" not in directory:
        return policy.load(Path(directory))
    return policy.load()


def policy_values(variables: dict[str, Any]) -> dict[str, Any]:
    """The role variables the host's policies decide (educloud.policy.role_variables), as
    ansible/group_vars/all/policies.yml sets them."""
    return policy.policy_role_variables(policies(variables))
