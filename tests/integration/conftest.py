"""Fixtures for tests against the live services of the lab (Keycloak behind nginx)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from keycloak import KeycloakAdmin

from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir, policies_dir

LAB = inventories_dir() / "lab"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class LabKeycloak:
    public_url: str
    admin_url: str
    realm: str
    client_id: str
    client_secret: str
    redirect_uri: str
    admin_user: str
    admin_password: str
    realm_admin_user: str
    realm_admin_password: str
    ca_file: str
    proxy_address: str


@pytest.fixture(scope="session")
def lab_keycloak() -> Iterator[LabKeycloak]:
    hosts_file = LAB / "hosts.yml"
    if not hosts_file.exists():
        pytest.fail("the lab inventory is missing: run 'educloud lab up' and deploy first")
    inventory = _yaml(hosts_file)["all"]
    proxies = list(inventory["children"].get("reverse_proxy", {}).get("hosts", {}) or {})
    if not proxies:
        pytest.fail("no host in the lab's reverse_proxy group")
    proxy_address = inventory["hosts"][proxies[0]]["ansible_host"]
    kc_vars = _yaml(LAB / "group_vars" / "keycloak.yml")
    vault = lab_secrets.read(LabPaths.default())
    ca_file = LabPaths.default().root / "ca.crt"
    if not ca_file.exists():
        pytest.fail(f"{ca_file} is missing: the reverse_proxy role exports its CA there")
    realm = kc_vars["keycloak_realms"][0]
    client = kc_vars["keycloak_clients"][0]
    info = LabKeycloak(
        public_url=kc_vars["keycloak_hostname"],
        admin_url=kc_vars["keycloak_hostname_admin"],
        realm=realm["name"],
        client_id=client["client_id"],
        client_secret=vault["vault_nextcloud_oidc_client_secret"],
        redirect_uri=client["redirect_uris"][0],
        admin_user="admin",
        admin_password=vault["vault_keycloak_admin_password"],
        realm_admin_user=realm["admins"][0]["username"],
        realm_admin_password=vault["vault_lab_realm_admin_password"],
        ca_file=str(ca_file),
        proxy_address=proxy_address,
    )
    names = {
        url.split("//", 1)[1].split("/", 1)[0]: proxy_address
        for url in (info.public_url, info.admin_url)
    }
    with pinned_names(names):
        yield info


@pytest.fixture(scope="session")
def kc_admin(lab_keycloak: LabKeycloak) -> KeycloakAdmin:
    """python-keycloak on the admin vhost, as the master realm's administrator."""
    admin = KeycloakAdmin(
        server_url=lab_keycloak.admin_url,
        username=lab_keycloak.admin_user,
        password=lab_keycloak.admin_password,
        realm_name="master",
        user_realm_name="master",
        verify=lab_keycloak.ca_file,
    )
    admin.change_current_realm(lab_keycloak.realm)
    return admin


@dataclass(frozen=True)
class TestUser:
    id: str
    username: str
    password: str
    group: str


@pytest.fixture
def test_user(kc_admin: KeycloakAdmin) -> Iterator[TestUser]:
    """A disposable pupil account in the lab realm, deleted afterwards."""
    username = f"pytest-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18) + "aA1!"
    user_id = kc_admin.create_user(
        {
            "username": username,
            "email": f"{username}@educloud.test",
            "firstName": "Test",
            "lastName": "Eleve",
            "enabled": True,
            "emailVerified": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    group = f"classe-{username}"
    group_id = kc_admin.create_group({"name": group})
    kc_admin.group_user_add(user_id, group_id)
    yield TestUser(user_id, username, password, group)
    kc_admin.delete_user(user_id)
    kc_admin.delete_group(group_id)


@pytest.fixture(scope="session")
def retention_policy() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(policies_dir() / "retention.yml")
    return data


@pytest.fixture
def scratch_realm(kc_admin, lab_keycloak) -> Iterator[str]:
    """A realm with the lab realm's user profile and a direct-grant client to try passwords."""
    name = f"scratch-{secrets.token_hex(3)}"
    conn = kc_admin.connection
    profile = conn.raw_get(f"admin/realms/{lab_keycloak.realm}/users/profile").json()
    # Stored events: the statistics count logins from them (C12).
    conn.raw_post(
        "admin/realms", data=json.dumps({"realm": name, "enabled": True, "eventsEnabled": True})
    )
    try:
        conn.raw_put(f"admin/realms/{name}/users/profile", data=json.dumps(profile))
        conn.raw_post(
            f"admin/realms/{name}/clients",
            data=json.dumps(
                {
                    "clientId": "try-password",
                    "publicClient": True,
                    "directAccessGrantsEnabled": True,
                }
            ),
        )
        yield name
    finally:
        conn.raw_delete(f"admin/realms/{name}")
