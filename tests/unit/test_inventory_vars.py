"""Inventory variables are read as plays see them: group variables merged into hosts."""

from __future__ import annotations

from educloud.inventory_vars import load


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
