"""Group membership as Ansible's plays see it, child groups included (the real
ansible-inventory on a throw-away inventory).

A host placed in a child group (`nextcloud: children: {nextcloud_paris: ...}`) is in the
parent group for every play; the checks must find it there too, or they would have no host
to look at and report "sans objet" on a deployment that has one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from educloud.deployment import inventory
from educloud.deployment import model as deployment_mod

NESTED = """
all:
  children:
    nextcloud:
      children:
        nextcloud_paris:
          hosts:
            nc1: {ansible_host: 192.0.2.31}
        nextcloud_lyon:
          children:
            nextcloud_lyon_a:
              hosts:
                nc2: {ansible_host: 192.0.2.32}
    backup:
      children:
        nextcloud: {}
      hosts:
        kc1: {}
    keycloak:
      hosts:
        kc1: {ansible_host: 192.0.2.21}
  hosts:
    alone: {ansible_host: 192.0.2.99}
"""


@pytest.fixture
def hosts(tmp_path: Path) -> dict[str, set[str]]:
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text(NESTED, encoding="utf-8")
    return {h.name: set(h.groups) for h in inventory.load(directory)}


def test_a_host_of_a_child_group_is_in_every_ancestor(hosts: dict[str, set[str]]) -> None:
    assert {"nextcloud", "nextcloud_paris", "backup"} <= hosts["nc1"]
    assert {"nextcloud", "nextcloud_lyon", "nextcloud_lyon_a", "backup"} <= hosts["nc2"]
    assert hosts["kc1"] >= {"keycloak", "backup"}
    assert "nextcloud" not in hosts["kc1"]


def test_all_is_no_group_of_its_own(hosts: dict[str, set[str]]) -> None:
    assert not any("all" in groups for groups in hosts.values())
    assert hosts["alone"] == {"ungrouped"}


def test_the_deployment_finds_them_in_the_parent_group(tmp_path: Path) -> None:
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text(NESTED, encoding="utf-8")
    dep = deployment_mod.load(directory)
    assert [h.name for h in dep.in_group("nextcloud")] == ["nc1", "nc2"]
    assert [h.name for h in dep.in_group("backup")] == ["kc1", "nc1", "nc2"]


def test_group_members_survives_a_cycle() -> None:
    listing = {
        "all": {"children": ["a"]},
        "a": {"children": ["b"], "hosts": ["h1"]},
        "b": {"children": ["a"], "hosts": ["h2"]},
    }
    members = inventory.group_members(listing)
    assert members["a"] == {"h1", "h2"}
    assert members["all"] == {"h1", "h2"}
