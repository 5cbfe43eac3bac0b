"""Role host checks run on their group's hosts and on molecule platforms only, and compare
with the policies the host's deployment applies (educloud_policies_dir, rendered by Ansible
when it is a template, never the repository's in its place)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

from educloud import policy
from educloud.errors import EducloudError
from educloud.hostscope import in_scope, policies, policies_dir, skip_unless_in_group
from educloud.paths import ansible_dir, repo_root


def test_group_member_and_molecule_platform_are_in_scope():
    assert in_scope({"inventory_hostname": "edu1", "group_names": ["keycloak"]}, "keycloak")
    assert in_scope({"inventory_hostname": "mol-kc", "group_names": []}, "keycloak")


def test_other_hosts_are_skipped():
    variables = {"inventory_hostname": "db1", "group_names": ["postgresql"]}
    assert not in_scope(variables, "keycloak")
    with pytest.raises(pytest.skip.Exception, match="db1 is not in the keycloak group"):
        skip_unless_in_group(variables, "keycloak")


def test_a_scenario_platform_named_for_the_group_is_the_only_one_in_scope():
    backup = {"inventory_hostname": "mol-backup", "group_names": []}
    store = {"inventory_hostname": "mol-bkstore", "group_names": []}
    assert in_scope(backup, "backup", platform="mol-backup")
    assert not in_scope(store, "backup", platform="mol-backup")
    assert in_scope(
        {"inventory_hostname": "edu1", "group_names": ["backup"]}, "backup", "mol-backup"
    )
    with pytest.raises(pytest.skip.Exception, match="mol-bkstore is not in the backup group"):
        skip_unless_in_group(store, "backup", platform="mol-backup")


# -- the policies the host's deployment applies ---------------------------------------------


@pytest.fixture
def ansible_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """testinfra runs ansible and ansible-inventory from PATH: this interpreter's first."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ansible_dir() / "ansible.cfg"))


def _inventory(directory: Path, variables: dict[str, Any]) -> Path:
    """A one-host inventory, read as the host checks read theirs (testinfra)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hosts.yml"
    host = {"ansible_connection": "local", **variables}
    path.write_text(yaml.safe_dump({"all": {"hosts": {"mol-unit": host}}}), encoding="utf-8")
    return path


def _checked_variables(inventory: Path) -> dict[str, Any]:
    """What a host check passes to hostscope: host.ansible.get_variables()."""
    variables: dict[str, Any] = AnsibleRunner.get_runner(str(inventory)).get_variables("mol-unit")
    return variables


def test_unset_is_the_repositorys_policies_as_the_plays_default_to() -> None:
    assert policies_dir({"inventory_hostname": "edu1"}) is None
    assert policies({"inventory_hostname": "edu1"}).directory == policy.load().directory
    # The plays' default, which hostscope follows (ansible/group_vars/all/policies.yml).
    assert "default(playbook_dir ~ '/../policies')" in (
        ansible_dir() / "group_vars" / "all" / "policies.yml"
    ).read_text(encoding="utf-8")


def test_a_path_is_the_deployments_own_copy(tmp_path: Path) -> None:
    copy = tmp_path / "policies"
    shutil.copytree(repo_root() / "policies", copy)
    variables = {"inventory_hostname": "edu1", "educloud_policies_dir": str(copy)}

    assert policies(variables).directory == copy.resolve()


@pytest.mark.parametrize("value", ["/nonexistent/policies", "", 3])
def test_a_value_naming_no_directory_is_an_error_naming_it(value: Any) -> None:
    variables = {"inventory_hostname": "edu1", "educloud_policies_dir": value}
    with pytest.raises(EducloudError, match=r"edu1: educloud_policies_dir .*") as caught:
        policies(variables)
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


def test_a_template_without_an_inventory_at_hand_is_an_error_not_the_repositorys() -> None:
    variables = {"inventory_hostname": "nowhere-1", "educloud_policies_dir": "{{ x }}/policies"}
    with pytest.raises(EducloudError, match=r"nowhere-1: educloud_policies_dir is a template"):
        policies(variables)


def test_a_template_is_rendered_by_ansible_on_the_checks_inventory(
    tmp_path: Path, ansible_on_path: None
) -> None:
    copy = tmp_path / "deployment" / "policies"
    shutil.copytree(repo_root() / "policies", copy)
    inventory = _inventory(
        tmp_path / "deployment", {"educloud_policies_dir": "{{ inventory_dir }}/policies"}
    )

    assert policies(_checked_variables(inventory)).directory == copy.resolve()


def test_a_template_naming_no_directory_or_unrenderable_is_an_error(
    tmp_path: Path, ansible_on_path: None
) -> None:
    missing = _inventory(tmp_path / "a", {"educloud_policies_dir": "{{ inventory_dir }}/none"})
    with pytest.raises(EducloudError, match=r"rendered .*/a/none\) is not a directory"):
        policies(_checked_variables(missing))

    broken = _inventory(tmp_path / "b", {"educloud_policies_dir": "{{ undefined_x }}/p"})
    with pytest.raises(EducloudError, match="Ansible cannot render educloud_policies_dir"):
        policies(_checked_variables(broken))


def test_the_molecule_scenarios_value_is_the_repositorys_policies(
    tmp_path: Path, ansible_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Molecule's verifier runs the checks from the scenario's directory (playbook_dir for
    ad-hoc Ansible, as it is converge.yml's for the plays) with the scenario's inventory."""
    scenarios: dict[str, list[Path]] = {}
    for config in sorted((repo_root() / "roles").glob("*/molecule/*/molecule.yml")):
        host_vars = yaml.safe_load(config.read_text(encoding="utf-8"))["provisioner"]
        for variables in (host_vars.get("inventory", {}).get("host_vars") or {}).values():
            if "educloud_policies_dir" in variables:
                scenarios.setdefault(variables["educloud_policies_dir"], []).append(config.parent)
    assert scenarios, "no molecule scenario sets educloud_policies_dir"
    for n, (value, directories) in enumerate(scenarios.items()):
        # Every scenario using this value sits at the same depth: one render proves them all.
        assert len({len(d.relative_to(repo_root()).parts) for d in directories}) == 1
        inventory = _inventory(tmp_path / f"scenario{n}", {"educloud_policies_dir": value})
        monkeypatch.chdir(directories[0])

        found = policies(_checked_variables(inventory)).directory

        assert found == policy.load().directory, (value, directories[0])
