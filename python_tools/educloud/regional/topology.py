"""A regional inventory's roles: which hosts balance, authenticate, store and cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from educloud.deployment import inventory as inventory_vars
from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError

# The inventory groups of the regional topology (inventories/example-regional).
LOAD_BALANCER = "load_balancer"
KEYCLOAK = "keycloak"
POSTGRESQL = "postgresql"
ETCD = "etcd"
REDIS = "redis"


def private_address(host: InventoryHost) -> str:
    """The address the other members reach this host on (the roles' convention)."""
    return str(host.variables.get("educloud_private_address") or host.address)


@dataclass(frozen=True)
class Regional:
    inventory: Path
    hosts: tuple[InventoryHost, ...]

    def group(self, name: str) -> list[InventoryHost]:
        return [h for h in self.hosts if name in h.groups]

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise EducloudError(f"no host {name!r} in {self.inventory}")

    @property
    def load_balancer(self) -> InventoryHost:
        return self.group(LOAD_BALANCER)[0]

    @property
    def keycloak_nodes(self) -> list[InventoryHost]:
        return self.group(KEYCLOAK)

    @property
    def database_nodes(self) -> list[InventoryHost]:
        return self.group(POSTGRESQL)


def load(inventory: Path) -> Regional:
    """The inventory's hosts; refused unless it has the regional topology's groups."""
    regional = Regional(inventory, tuple(inventory_vars.load(inventory)))
    missing = [
        group
        for group, least in ((LOAD_BALANCER, 1), (KEYCLOAK, 2), (POSTGRESQL, 3))
        if len(regional.group(group)) < least
    ]
    if missing:
        raise EducloudError(
            f"{inventory} is not a regional topology: it needs at least one load_balancer, "
            f"two keycloak and three postgresql hosts (too few in: {', '.join(missing)})"
        )
    return regional
