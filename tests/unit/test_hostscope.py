"""Role host checks run on their group's hosts and on molecule platforms only."""

from __future__ import annotations

import pytest

from educloud.hostscope import in_scope, skip_unless_in_group


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
