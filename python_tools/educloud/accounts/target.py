"""Where `educloud accounts` works: the realm's admin URL and its service account.

From the deployment's inventory (Keycloak's admin hostname, the first realm, the reverse
proxy's address to reach the names before DNS knows them) and the service client's secret
from the environment (`EDUCLOUD_ACCOUNTS_CLIENT_SECRET`, or a file): never from the command
line, where it would show in the process list and the shell history. When the environment
does not give it, the inventory's own value (`keycloak_service_clients[].secret`, usually a
vault expression) is templated by Ansible with the deployment's vault password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from educloud.accounts.keycloak_directory import Connection
from educloud.deployment import ansible
from educloud.deployment import model as deployment
from educloud.deployment.model import Deployment
from educloud.errors import EducloudError

SECRET_ENV = "EDUCLOUD_ACCOUNTS_CLIENT_SECRET"  # noqa: S105 (a variable name)
DEFAULT_CLIENT = "educloud-accounts"  # daily runs: manage-users only
BULK_CLIENT = "educloud-accounts-bulk"  # first loads and rollovers: partial import


@dataclass(frozen=True)
class Target:
    connection: Connection
    login_url: str  # what the sheets tell pupils to open
    pins: dict[str, str]  # host name -> reverse proxy address


def _inventory_secret(found: Deployment, client_id: str) -> str | None:
    """The client's secret as the inventory declares it, templated by Ansible (a vault
    expression reads decrypted, in memory); None when the inventory does not declare it."""
    for host in found.in_group("keycloak"):
        clients = host.variables.get("keycloak_service_clients", []) or []
        for index, client in enumerate(clients):
            if client.get("client_id") != client_id or not client.get("secret"):
                continue
            value = ansible.template(
                found.inventory, host.name, f"keycloak_service_clients[{index}].secret"
            )
            return str(value) if value else None
    return None


def _secret(found: Deployment, client_id: str, secret_env: str) -> str:
    if os.environ.get(secret_env):
        return os.environ[secret_env]
    secret_file_env = f"{secret_env}_FILE"
    secret_file = os.environ.get(secret_file_env)
    if secret_file:
        try:
            return Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EducloudError(f"{secret_file_env}: cannot read {secret_file}: {exc}") from None
    value = _inventory_secret(found, client_id)
    if value:
        return value
    raise EducloudError(
        f"the service client's secret is missing: set {secret_env} or {secret_file_env} "
        f"(the secret of client {client_id} in the realm, keycloak_service_clients)"
    )


def from_inventory(
    inventory: Path,
    *,
    realm: str | None = None,
    client_id: str = DEFAULT_CLIENT,
    secret_env: str = SECRET_ENV,
    ca_file: str | None = None,
) -> Target:
    """The realm and service client of `inventory`; the secret from `secret_env`(`_FILE`)."""
    found = deployment.load(inventory)
    if not found.keycloak_admin_url:
        raise EducloudError(f"inventory {inventory} has no host in the keycloak group")
    if realm is None:
        if not found.realms:
            raise EducloudError(f"inventory {inventory} declares no keycloak_realms")
        realm = found.realms[0]
    elif realm not in found.realms:
        raise EducloudError(f"realm {realm!r} is not one of {', '.join(found.realms)}")
    verify: bool | str = True
    if ca_file is None and found.ca_file is not None:
        ca_file = str(found.ca_file)
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise EducloudError(f"CA file {ca_file} not found")
        verify = ca_file
    connection = Connection(
        server_url=found.keycloak_admin_url,
        realm=realm,
        client_id=client_id,
        client_secret=_secret(found, client_id, secret_env),
        verify=verify,
    )
    login_url = found.keycloak_url and f"{found.keycloak_url}/realms/{realm}/account"
    return Target(connection, login_url, found.pins())
