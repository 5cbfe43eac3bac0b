"""Which hosts a role's host checks apply to (shared by every role's testinfra tests).

The same test files run in a role's molecule scenario, whose temporary lab hosts are
named mol-* and belong to no group, and through `educloud summary` against a whole
inventory, where only the hosts of the role's group are in scope.
"""

from __future__ import annotations

from typing import Any

import pytest

MOLECULE_PREFIX = "mol-"


def in_scope(variables: dict[str, Any], group: str) -> bool:
    name = str(variables.get("inventory_hostname", ""))
    return name.startswith(MOLECULE_PREFIX) or group in variables.get("group_names", [])


def skip_unless_in_group(variables: dict[str, Any], group: str) -> None:
    """Skip the current test on a host outside `group` (molecule platforms are in scope)."""
    if not in_scope(variables, group):
        pytest.skip(f"{variables.get('inventory_hostname')} is not in the {group} group")
