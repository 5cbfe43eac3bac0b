"""A lab's Keycloak as its inventory describes it (URLs, client, secrets, CA, proxy), and
disposable users in its realm.

Used by the lab's tests and benchmarks: the single server (inventories/lab) and the
regional topology (inventories/lab-regional) are both reached through their proxy, over
TLS, with the lab's vault for the secrets.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from keycloak import KeycloakAdmin

from educloud.errors import EducloudError
from educloud.lab import secrets as lab_secrets
from educloud.lab.settings import LabPaths
from educloud.paths import inventories_dir

# The realm, clients and hostnames are the single server's; the regional inventory links them.
KEYCLOAK_VARS = inventories_dir() / "lab" / "group_vars" / "keycloak.yml"


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
    automation_client_id: str
    automation_client_secret: str
    realm_admin_user: str
    realm_admin_password: str
    ca_file: str
    proxy_address: str

    @property
    def pinned(self) -> dict[str, str]:
        """The public and admin names, resolved to the proxy (educloud.netpin)."""
        return {
            url.split("//", 1)[1].split("/", 1)[0]: self.proxy_address
            for url in (self.public_url, self.admin_url)
        }


def keycloak_info(inventory_dir: Path, ca_file: Path) -> LabKeycloak:
    """The Keycloak of a lab inventory, reached through its first reverse_proxy host."""
    hosts_file = inventory_dir / "hosts.yml"
    if not hosts_file.exists():
        raise EducloudError(f"{hosts_file} is missing: run 'educloud lab up' and deploy first")
    inventory = _yaml(hosts_file)["all"]
    proxies = list(inventory["children"].get("reverse_proxy", {}).get("hosts", {}) or {})
    if not proxies:
        raise EducloudError(f"no host in the reverse_proxy group of {hosts_file}")
    if not ca_file.exists():
        raise EducloudError(f"{ca_file} is missing: the reverse_proxy role exports its CA there")
    kc_vars = _yaml(KEYCLOAK_VARS)
    vault = lab_secrets.read(LabPaths.default())
    realm = kc_vars["keycloak_realms"][0]
    client = kc_vars["keycloak_clients"][0]
    return LabKeycloak(
        public_url=kc_vars["keycloak_hostname"],
        admin_url=kc_vars["keycloak_hostname_admin"],
        realm=realm["name"],
        client_id=client["client_id"],
        client_secret=vault["vault_nextcloud_oidc_client_secret"],
        redirect_uri=client["redirect_uris"][0],
        # Master's automation client (client credentials): the bootstrap admin is gone.
        automation_client_id=kc_vars.get("keycloak_automation_client_id", "educloud-automation"),
        automation_client_secret=vault["vault_keycloak_automation_client_secret"],
        realm_admin_user=realm["admins"][0]["username"],
        realm_admin_password=vault["vault_lab_realm_admin_password"],
        ca_file=str(ca_file),
        proxy_address=inventory["hosts"][proxies[0]]["ansible_host"],
    )


def admin_client(keycloak: LabKeycloak) -> KeycloakAdmin:
    """python-keycloak on the admin vhost, as master's automation client."""
    admin = KeycloakAdmin(
        server_url=keycloak.admin_url,
        client_id=keycloak.automation_client_id,
        client_secret_key=keycloak.automation_client_secret,
        realm_name="master",
        user_realm_name="master",
        verify=keycloak.ca_file,
    )
    admin.change_current_realm(keycloak.realm)
    return admin


@dataclass(frozen=True)
class LabUser:
    __test__ = False  # pytest: a fixture's value, not a test class
    id: str
    username: str
    password: str
    group: str


@contextmanager
def disposable_user(kc_admin: KeycloakAdmin, prefix: str = "pytest") -> Iterator[LabUser]:
    """A pupil account in its own class group, deleted afterwards."""
    username = f"{prefix}-{secrets.token_hex(4)}"
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
    group_id: str | None = None
    try:
        group_id = kc_admin.create_group({"name": group})
        if group_id is None:
            raise EducloudError(f"Keycloak did not create the group {group}")
        kc_admin.group_user_add(user_id, group_id)
        yield LabUser(user_id, username, password, group)
    finally:
        kc_admin.delete_user(user_id)
        if group_id is not None:
            kc_admin.delete_group(group_id)
