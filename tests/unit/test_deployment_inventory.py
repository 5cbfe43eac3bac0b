"""Inventory variables are read as plays see them: group variables merged into hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from educloud.deployment.inventory import InventoryHost, load


def test_group_vars_reach_the_host(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    keycloak:\n      hosts:\n"
        "        kc1:\n          ansible_host: 198.18.0.20\n"
    )
    (tmp_path / "group_vars" / "keycloak.yml").write_text(
        "keycloak_hostname: https://auth.academie.test\n"
    )
    (host,) = load(tmp_path)
    assert host.name == "kc1"
    assert host.groups == ("keycloak",)
    assert host.address == "198.18.0.20"
    assert host.variables["keycloak_hostname"] == "https://auth.academie.test"


def test_listing_is_read_once_until_the_inventory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from educloud.deployment import inventory as inventory_vars

    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_host: 198.18.0.50}\n")
    calls: list[Path] = []
    real = inventory_vars._ansible_inventory

    def counted(path: Path) -> dict[str, object]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(inventory_vars, "_ansible_inventory", counted)
    assert [h.address for h in inventory_vars.load(inventory)] == ["198.18.0.50"]
    inventory_vars.load(inventory)
    assert len(calls) == 1
    inventory.write_text("all:\n  hosts:\n    a: {ansible_host: 198.18.0.51}\n")
    os.utime(inventory, ns=(1, 2_000_000_000_000_000_000))
    assert [h.address for h in inventory_vars.load(inventory)] == ["198.18.0.51"]
    assert len(calls) == 2
    # Another process reads the saved listing instead of running ansible-inventory.
    saved = tmp_path / "listing.json"
    inventory_vars.write_cache(inventory, saved)
    inventory_vars._read.clear()
    monkeypatch.setenv(inventory_vars.CACHE_ENV, str(saved))
    assert [h.address for h in inventory_vars.load(inventory)] == ["198.18.0.51"]
    assert len(calls) == 2


def test_a_hosts_repr_never_shows_its_variables() -> None:
    """A failing test's traceback prints the hosts it was given: the vault's secrets are in
    their variables and must not be printed."""
    host = InventoryHost("rdb1", ("redis",), {"vault_redis_password": "not-to-be-printed"})
    assert "not-to-be-printed" not in repr(host)
    assert "not-to-be-printed" not in str(host)
