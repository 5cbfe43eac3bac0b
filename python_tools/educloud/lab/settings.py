"""The lab's fixed settings and the topology it boots.

Every address here is in 198.18.0.0/24 (RFC 2544, reserved for test networks): the lab
never uses, and never lets its hosts reach, anything outside that range and loopback.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from educloud.errors import EducloudError
from educloud.paths import repo_root

LAB_NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
BRIDGE_NAME = "eclab0"
BRIDGE_ADDRESS = ipaddress.IPv4Address("198.18.0.1")
# A lab address that answers on TCP but that no egress policy allows: the charter
# checks prove the egress filter by failing to reach it (issue: charter verification).
DECOY_ADDRESS = ipaddress.IPv4Address("198.18.0.254")
APT_PROXY_PORT = 3142
ARTIFACT_PORT = 8088
# The lab's mail relay (policies/egress.yml, purpose mail_relay): an SMTP sink that files
# every message in a maildir under the lab directory (LabPaths.mail), delivering nothing.
SMTP_SINK_PORT = 2525
DECOY_PORT = 8443
# The backup provider's storage, which no role manages (issue #28, item 5): an SFTP-only
# account and S3-compatible object storage (HTTPS only), both on the bridge address.
SFTP_PORT = 2222
S3_PORT = 9443
# Hosts not in the topology (molecule platforms, drill hosts) get addresses from here.
DYNAMIC_RANGE = (100, 199)
NFT_TABLE = "educloud_lab"
SUITE = "bookworm"


def lab_dir() -> Path:
    """Where the lab keeps images, machines, keys and state (EDUCLOUD_LAB_DIR overrides)."""
    return Path(os.environ.get("EDUCLOUD_LAB_DIR", "/var/lib/educloud-lab"))


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def machines(self) -> Path:
        return self.root / "machines"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def apt_cache(self) -> Path:
        return self.root / "apt-cacher-ng"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def mail(self) -> Path:
        """The SMTP sink's maildir: each message a file in new/."""
        return self.root / "mail"

    @property
    def provider(self) -> Path:
        """The backup provider's storage (sftp/, s3/), beside the lab directory, not in it.

        Its servers run as unprivileged accounts, which cannot traverse the lab directory
        (0700: machines' roots, the vault, the CA key).
        """
        return self.root.with_name(f"{self.root.name}-provider")

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @classmethod
    def default(cls) -> LabPaths:
        return cls(lab_dir())


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its name, address and the inventory groups it belongs to."""

    name: str
    address: ipaddress.IPv4Address
    groups: tuple[str, ...] = field(default_factory=tuple)
    memory_mb: int = 0


# The lab's topologies: the single server (the default) and the regional one (issue #9),
# each with its own inventory; one lab (network, services, vault) runs them side by side.
VARIANTS = ("single", "regional")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise EducloudError(
            f"unknown lab topology {variant!r}: choose one of {', '.join(VARIANTS)}"
        )
    return variant


def topology_file(variant: str = "single") -> Path:
    # Outside inventories/: Ansible would read any YAML file there as an inventory.
    name = "topology.yml" if check_variant(variant) == "single" else f"topology-{variant}.yml"
    return repo_root() / "lab" / name


def _check_name(name: str) -> str:
    # Host names become interface and machine names: keep them short and plain.
    if not name or len(name) > 11 or not name.replace("-", "").isalnum() or not name[0].isalpha():
        raise EducloudError(
            f"lab host name {name!r} is invalid: use 1-11 letters, digits or '-', "
            "starting with a letter"
        )
    return name


def parse_address(value: object, where: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError as exc:
        raise EducloudError(f"{where}: {value!r} is not an IPv4 address") from exc
    reserved = {
        BRIDGE_ADDRESS,
        DECOY_ADDRESS,
        LAB_NETWORK.network_address,
        LAB_NETWORK.broadcast_address,
    }
    if address not in LAB_NETWORK or address in reserved:
        raise EducloudError(
            f"{where}: {address} is not a usable lab address; lab hosts live in "
            f"{LAB_NETWORK} (excluding {BRIDGE_ADDRESS} and {DECOY_ADDRESS})"
        )
    return address


def load_topology(path: Path | None = None) -> list[HostSpec]:
    """Read the lab topology: which hosts to boot and which groups each is in."""
    source = path or topology_file()
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EducloudError(f"{source}: lab topology not found") from exc
    except yaml.YAMLError as exc:
        raise EducloudError(f"{source}: not valid YAML: {exc}") from exc
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict) or not hosts:
        raise EducloudError(f"{source}: expected a mapping 'hosts:' with at least one host")
    specs: list[HostSpec] = []
    seen: set[ipaddress.IPv4Address] = set()
    for name, body in hosts.items():
        where = f"{source}: hosts.{name}"
        if not isinstance(body, dict):
            raise EducloudError(f"{where}: expected a mapping with 'address' and 'groups'")
        address = parse_address(body.get("address"), f"{where}.address")
        if address in seen:
            raise EducloudError(f"{where}.address: {address} is used by another host")
        if DYNAMIC_RANGE[0] <= int(address) - int(LAB_NETWORK.network_address) <= DYNAMIC_RANGE[1]:
            raise EducloudError(
                f"{where}.address: {address} is in the range kept for temporary hosts "
                f"(.{DYNAMIC_RANGE[0]}-.{DYNAMIC_RANGE[1]})"
            )
        seen.add(address)
        groups = body.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise EducloudError(f"{where}.groups: expected a list of group names")
        memory = body.get("memory_mb", 0)
        if not isinstance(memory, int) or memory < 0:
            raise EducloudError(f"{where}.memory_mb: expected a positive integer")
        specs.append(HostSpec(_check_name(str(name)), address, tuple(groups), memory))
    return specs


def check_host_name(name: str) -> str:
    return _check_name(name)
