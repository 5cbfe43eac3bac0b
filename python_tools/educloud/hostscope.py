"""Which hosts a role's host checks apply to (shared by every role's testinfra tests).

The same test files run in a role's molecule scenario, whose temporary lab hosts are
named mol-* and belong to no group, and through `educloud summary` against a whole
inventory, where only the hosts of the role's group are in scope. Either way the checks
compare with the policies the host's deployment applies (`policies`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from educloud import policy
from educloud.errors import EducloudError

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


POLICIES_DIR = "educloud_policies_dir"
# Rendered values, by inventory, host, written value and directory (playbook_dir): Ansible
# runs once for each.
_rendered: dict[tuple[str, str, str, str], str] = {}


def policies(variables: dict[str, Any]) -> policy.Policies:
    """The policies the host's deployment applies: the directory `educloud_policies_dir`
    names, rendered as Ansible renders it when it is a template (molecule's scenarios write
    it as one, of the repository's path); the repository's `policies/` when it is unset, as
    the plays default to (ansible/group_vars/all/policies.yml)."""
    return policy.load(policies_dir(variables))


def policies_dir(variables: dict[str, Any]) -> Path | None:
    """The host's `educloud_policies_dir`, rendered and checked; None when it is unset.
    A value that cannot be rendered or names no directory is an EducloudError naming it."""
    host = str(variables.get("inventory_hostname", ""))
    value = variables.get(POLICIES_DIR)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise EducloudError(
            f"{host}: {POLICIES_DIR} is {value!r}: name the deployment's policies directory, "
            "or leave it unset for the repository's policies/"
        )
    rendered = _render(variables, value) if "{{" in value or "{%" in value else value
    directory = Path(rendered)
    if not directory.is_dir():
        shown = value if rendered == value else f"{value!r}, rendered {rendered}"
        raise EducloudError(f"{host}: {POLICIES_DIR} ({shown}) is not a directory here")
    return directory


def _render(variables: dict[str, Any], value: str) -> str:
    """`educloud_policies_dir` templated by Ansible on the inventory these checks run on
    (testinfra's, from --ansible-inventory), as `host.ansible("debug", ...)` would: the
    host's variables, its inventory_dir, and as playbook_dir the directory the checks run
    from (molecule runs them from the scenario's, where converge.yml is)."""
    host = str(variables.get("inventory_hostname", ""))
    runner = _ansible_runner(variables, host)
    if runner is None:
        raise EducloudError(
            f"{host}: {POLICIES_DIR} is a template ({value}) and no Ansible inventory is at "
            "hand to render it (the host checks render it through testinfra's "
            "--ansible-inventory): run them with one, or write the directory's path"
        )
    key = (str(runner.inventory_file), host, value, os.getcwd())
    if key not in _rendered:
        # A mapping when Ansible rendered it; a string (the error) when it could not.
        answer = runner.run_module(
            host, "ansible.builtin.debug", "msg={{ {'rendered': educloud_policies_dir} }}"
        ).get("msg")
        if not isinstance(answer, dict) or not isinstance(answer.get("rendered"), str):
            raise EducloudError(f"{host}: Ansible cannot render {POLICIES_DIR} ({value}): {answer}")
        _rendered[key] = answer["rendered"]
    return _rendered[key]


def _ansible_runner(variables: dict[str, Any], host: str) -> Any:
    """The testinfra Ansible runner whose inventory these variables come from (its
    get_variables returns the inventory's own mapping); else the only one that knows the
    host. None outside testinfra."""
    try:
        from testinfra.utils.ansible_runner import AnsibleRunner
    except ImportError:
        return None
    # testinfra (pinned) keeps one runner per inventory there, and lists them nowhere else.
    runners = list(AnsibleRunner._runners.values())
    loaded = [r for r in runners if "inventory" in vars(r)]  # read already (cached_property)
    for runner in loaded:
        if runner.inventory.get("_meta", {}).get("hostvars", {}).get(host) is variables:
            return runner
    knowing = [r for r in loaded if host in r.inventory.get("_meta", {}).get("hostvars", {})]
    return knowing[0] if len(knowing) == 1 else None


def policy_values(variables: dict[str, Any]) -> dict[str, Any]:
    """The role variables the host's policies decide (educloud.policy.role_variables), as
    ansible/group_vars/all/policies.yml sets them."""
    return policy.policy_role_variables(policies(variables))


_settings: dict[tuple[str, str], Any] = {}


def setting(host: Any, name: str, default: Any) -> Any:
    """A variable as the play sees it on a testinfra `host`: inventory values may be
    templates ("{{ vault_x }}") that get_variables() leaves unrendered, so Ansible renders
    it; a role default the inventory does not set is `default`. Read once per host."""
    key = (str(host.ansible.get_variables().get("inventory_hostname")), name)
    if key not in _settings:
        answer = host.ansible("ansible.builtin.debug", f"var={name}", check=False)
        value = answer.get(name, default)
        # Undefined: older and newer ansible-core spell it differently.
        undefined = isinstance(value, str) and (
            value == "VARIABLE IS NOT DEFINED!" or value.startswith("<< error")
        )
        _settings[key] = default if undefined else value
    return _settings[key]
