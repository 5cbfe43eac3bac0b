"""A deployment's Keycloak: the realm's admin URL, a service client and its secret, the CA
to trust and the names to pin, from the inventory; and a connection through them.

From the deployment's inventory (Keycloak's admin hostname, the realms, the reverse proxy's
address to reach the names before DNS knows them, the CA of `Deployment.ca_file`) and the
service client's secret from the environment (its `secret_env`, or a file named by
`<secret_env>_FILE`): never from the command line, where it would show in the process list
and the shell history. When the environment does not give it, the inventory's own value
(`keycloak_service_clients[].secret`, usually a vault expression) is templated by Ansible
with the deployment's vault password.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from educloud.clients.keycloak import Connection
from educloud.deployment import ansible
from educloud.deployment import model as deployment
from educloud.deployment.model import Deployment
from educloud.errors import EducloudError
from educloud.netpin import pinned_names

ACCOUNTS_SECRET_ENV = "EDUCLOUD_ACCOUNTS_CLIENT_SECRET"  # noqa: S105 (a variable name)

Client = TypeVar("Client")


@dataclass(frozen=True)
class ServiceClient:
    """A confidential client of the realm (keycloak_service_clients) and where its secret is."""

    client_id: str
    secret_env: str = ACCOUNTS_SECRET_ENV  # the variable, or `<it>_FILE`, holding the secret


ACCOUNTS = ServiceClient("educloud-accounts")  # daily runs: manage-users only
ACCOUNTS_BULK = ServiceClient("educloud-accounts-bulk")  # first loads, rollovers: partial import
DATA_RIGHTS = ServiceClient("educloud-data-rights", "EDUCLOUD_DATA_RIGHTS_CLIENT_SECRET")


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


def _secret(found: Deployment, client: ServiceClient) -> str:
    if os.environ.get(client.secret_env):
        return os.environ[client.secret_env]
    secret_file_env = f"{client.secret_env}_FILE"
    secret_file = os.environ.get(secret_file_env)
    if secret_file:
        try:
            return Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EducloudError(f"{secret_file_env}: cannot read {secret_file}: {exc}") from None
    value = _inventory_secret(found, client.client_id)
    if value:
        return value
    raise EducloudError(
        f"the service client's secret is missing: set {client.secret_env} or "
        f"{secret_file_env} (the secret of client {client.client_id} in the realm, "
        "keycloak_service_clients)"
    )


def realm_of(found: Deployment, realm: str | None) -> str:
    """`realm` if the deployment declares it; the deployment's first realm if None."""
    if realm is None:
        if not found.realms:
            raise EducloudError(f"inventory {found.inventory} declares no keycloak_realms")
        return found.realms[0]
    if realm not in found.realms:
        raise EducloudError(f"realm {realm!r} is not one of {', '.join(found.realms)}")
    return realm


def verify_for(found: Deployment, ca_file: str | None = None) -> bool | str:
    """What HTTPS clients check the deployment's certificates with: `ca_file` if given, else
    the CA the deployment exports, else the system's trust store (True)."""
    if ca_file is None and found.ca_file is not None:
        ca_file = str(found.ca_file)
    if ca_file is None:
        return True
    if not Path(ca_file).is_file():
        raise EducloudError(f"CA file {ca_file} not found")
    return ca_file


def target(
    inventory: Path | Deployment,
    *,
    realm: str | None = None,
    client: ServiceClient = ACCOUNTS,
    ca_file: str | None = None,
) -> Target:
    """The realm (default: the first) and service client of the deployment; the secret from
    `client.secret_env`(`_FILE`) or the inventory. Nothing is contacted."""
    found = inventory if isinstance(inventory, Deployment) else deployment.load(inventory)
    if not found.keycloak_admin_url:
        raise EducloudError(f"inventory {found.inventory} has no host in the keycloak group")
    realm = realm_of(found, realm)
    connection = Connection(
        server_url=found.keycloak_admin_url,
        realm=realm,
        client_id=client.client_id,
        client_secret=_secret(found, client),
        verify=verify_for(found, ca_file),
    )
    login_url = found.keycloak_url and f"{found.keycloak_url}/realms/{realm}/account"
    return Target(connection, login_url, found.pins())


@contextmanager
def connect(
    inventory: Path | Deployment,
    opener: Callable[[Connection], Client],
    *,
    realm: str | None = None,
    client: ServiceClient = ACCOUNTS,
) -> Iterator[tuple[Client, Target]]:
    """The realm's client that `opener` logs in (RealmAdmin.connect, KeycloakDirectory.connect,
    ...), with the deployment's names pinned to its reverse proxy while the block runs."""
    found = target(inventory, realm=realm, client=client)
    with pinned_names(found.pins):
        yield opener(found.connection), found
