"""What the charter checks need to know about a deployment, read from its inventory."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from educloud.deployment import ansible
from educloud.deployment import inventory as inventory_vars
from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError

# The SSH settings of a host's inventory (the common role's defaults when unset), as an
# expression Ansible templates for the checks that need them (the SSH answers' allowance,
# sshd's Match blocks).
SSH_SETTINGS = (
    "{'networks': common_ssh_allowed_networks | default(['0.0.0.0/0']),"
    " 'port': common_ssh_port | default(22)}"
)


@dataclass(frozen=True)
class Site:
    name: str
    proxy_address: str
    public: bool  # False when the site only answers the administrators' networks


@dataclass(frozen=True)
class Deployment:
    inventory: Path
    hosts: tuple[InventoryHost, ...]
    sites: tuple[Site, ...]
    keycloak_url: str
    keycloak_admin_url: str
    realms: tuple[str, ...]
    privacy_path: str
    # The report form every public site serves (C9); None when the inventory has none.
    reporting_path: str | None = None
    # The admin site serving the moderation API at /moderation/api/ (None: not exposed).
    moderation_site: str | None = None
    # The inventory's own copy of the policies (`educloud_policies_dir`, rendered as Ansible
    # renders it for the plays); None: the repository's policies/.
    policies_dir: Path | None = None

    def in_group(self, group: str) -> tuple[InventoryHost, ...]:
        return tuple(h for h in self.hosts if group in h.groups)

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def public_sites(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.public)

    @property
    def own_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.sites)

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate the deployment's names chain to, on this machine: where the
        reverse proxy exports its internal CA (`reverse_proxy_ca_export_path`), when it is
        there; None for certificates the system's trust store already accepts."""
        for host in self.in_group("reverse_proxy"):
            value = host.variables.get("reverse_proxy_ca_export_path")
            if _literal(value) and Path(str(value)).is_file():
                return Path(str(value))
        return None

    def pins(self) -> dict[str, str]:
        """Each site name to its reverse proxy's address (reach it before DNS knows it)."""
        return {site.name: site.proxy_address for site in self.sites}


def _literal(value: Any) -> bool:
    return isinstance(value, str) and "{{" not in value


def _policies_dir(inventory: Path, hosts: tuple[InventoryHost, ...]) -> Path | None:
    """`educloud_policies_dir` as the plays see it: a templated value is rendered by Ansible
    (once per distinct value), so deploy and verify read the same directory."""
    raw: dict[str, str] = {}
    for host in hosts:
        value = host.variables.get("educloud_policies_dir")
        if value:
            raw.setdefault(str(value), host.name)
    rendered = {
        value
        if _literal(value)
        else str(ansible.template(inventory, host, "educloud_policies_dir"))
        for value, host in raw.items()
    }
    if not rendered:
        return None
    if len(rendered) > 1:
        raise EducloudError(
            f"inventory {inventory}: its hosts name different policies directories "
            f"({', '.join(sorted(rendered))}); a deployment applies one copy of the policies"
        )
    directory = Path(rendered.pop())
    if not directory.is_dir():
        raise EducloudError(
            f"inventory {inventory}: educloud_policies_dir {directory} is not a directory"
        )
    return directory


def load(inventory: Path) -> Deployment:
    hosts = tuple(inventory_vars.load(inventory))
    if not hosts:
        raise EducloudError(f"inventory {inventory} has no hosts")
    sites: list[Site] = []
    privacy_path = "/confidentialite"
    reporting_path = moderation_site = None
    for host in hosts:
        if "reverse_proxy" not in host.groups:
            continue
        privacy_path = str(host.variables.get("reverse_proxy_privacy_notice_path", privacy_path))
        if host.variables.get("reverse_proxy_reporting_upstream"):
            reporting_path = str(host.variables.get("reverse_proxy_reporting_path", "/signalement"))
            moderation_site = str(host.variables.get("reverse_proxy_reporting_admin_site") or "")
            moderation_site = moderation_site if _literal(moderation_site) else None
        for site in host.variables.get("reverse_proxy_sites", []) or []:
            name = site.get("name")
            if not _literal(name):
                continue
            sites.append(Site(name, host.address, public=not site.get("allow_networks")))
    keycloak_url = keycloak_admin_url = ""
    realms: list[str] = []
    for host in hosts:
        if "keycloak" in host.groups:
            keycloak_url = str(host.variables.get("keycloak_hostname", ""))
            keycloak_admin_url = str(host.variables.get("keycloak_hostname_admin", keycloak_url))
            realms = [r["name"] for r in host.variables.get("keycloak_realms", []) or []]
            break
    return Deployment(
        inventory=inventory,
        hosts=hosts,
        sites=tuple(sites),
        keycloak_url=keycloak_url,
        keycloak_admin_url=keycloak_admin_url,
        realms=tuple(realms),
        privacy_path=privacy_path,
        reporting_path=reporting_path,
        moderation_site=moderation_site or None,
        policies_dir=_policies_dir(inventory, hosts),
    )


def public_addresses(host: InventoryHost, addresses: list[str]) -> list[str]:
    """The host's globally routable addresses (its inventory address and its interfaces)."""
    found = []
    for raw in [host.address, *addresses]:
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            continue
        if address.is_global and str(address) not in found:
            found.append(str(address))
    return found
