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
