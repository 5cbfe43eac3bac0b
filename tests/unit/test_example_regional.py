"""The example regional inventory has the topology issue #9 describes, and the single-server
lab inventory keeps every regional feature off."""

from __future__ import annotations

import yaml

from educloud.backup.compliance import DATA_GROUPS
from educloud.paths import inventories_dir, repo_root
from educloud.regional import topology


def test_example_regional_inventory_has_the_highly_available_topology() -> None:
    regional = topology.load(inventories_dir() / "example-regional")
    balancers = regional.group("load_balancer")
    assert len(balancers) >= 2
    assert all(h.variables.get("load_balancer_vip") for h in balancers)
    assert {h.name for h in balancers} <= {h.name for h in regional.group("reverse_proxy")}
    assert len(regional.keycloak_nodes) >= 2
    assert all(h.variables["keycloak_cache"] == "ispn" for h in regional.keycloak_nodes)
    assert len(regional.group("etcd")) == 3
    assert len(regional.database_nodes) >= 3
    assert all(h.variables["postgresql_patroni_enabled"] is True for h in regional.database_nodes)
    assert len(regional.group("redis")) >= 3
    nextcloud = regional.group("nextcloud")
    assert len(nextcloud) >= 2
    assert all(h.variables["nextcloud_objectstore_s3"]["bucket"] for h in nextcloud)
    backed_up = {h.name for h in regional.group("backup")}
    holders = {h.name for group in DATA_GROUPS for h in regional.group(group)}
    assert holders <= backed_up
    assert all("educloud_private_address" in h.variables for h in regional.hosts)


def test_single_server_inventory_keeps_the_regional_features_off() -> None:
    defaults = {
        role: yaml.safe_load((repo_root() / "roles" / role / "defaults/main.yml").read_text())
        for role in ("postgresql", "keycloak", "nextcloud")
    }
    assert defaults["postgresql"]["postgresql_patroni_enabled"] is False
    assert defaults["keycloak"]["keycloak_cache"] == "local"
    assert defaults["keycloak"]["keycloak_http_host"] == "127.0.0.1"
    assert defaults["nextcloud"]["nextcloud_objectstore_s3"] == {}
    assert defaults["nextcloud"]["nextcloud_redis_host"] == ""
    regional_settings = (
        "postgresql_patroni_enabled", "keycloak_cache", "keycloak_http_host",
        "nextcloud_objectstore_s3", "nextcloud_redis_host", "load_balancer_vip",
    )  # fmt: skip
    for path in (inventories_dir() / "lab" / "group_vars").rglob("*.yml"):
        if path.name == "vault.yml":
            continue
        settings = yaml.safe_load(path.read_text()) or {}
        assert not set(settings) & set(regional_settings), path
