"""An inventory's hosts, groups and variables, as Ansible itself resolves them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from educloud.deployment.ansible import ansible_env, explain_failure
from educloud.errors import EducloudError
from educloud.paths import ansible_dir, repo_root


@dataclass(frozen=True)
class InventoryHost:
    name: str
    groups: tuple[str, ...]
    # Out of the repr: the variables hold the vault's secrets, and a failing test's traceback
    # or an error message printing a host must not show them.
    variables: dict[str, Any] = field(repr=False)

    @property
    def address(self) -> str:
        return str(self.variables.get("ansible_host", self.name))

    @property
    def user(self) -> str:
        return str(self.variables.get("ansible_user") or "root")

    def ssh_argv(self) -> list[str]:
        """ssh to this host as Ansible reaches it (its key, known hosts and options); the
        remote command goes after a final "--"."""
        argv = ["ssh", "-o", "BatchMode=yes"]
        key = self.variables.get("ansible_ssh_private_key_file")
        if key:
            argv += ["-i", str(key)]
        argv += shlex.split(str(self.variables.get("ansible_ssh_common_args") or ""))
        port = self.variables.get("ansible_port")
        if port:
            argv += ["-p", str(port)]
        argv.append(f"{self.user}@{self.address}")
        return argv


# A file holding one inventory's `ansible-inventory --list` (written by `educloud verify`
# for its pytest child, which would otherwise read the same inventory again).
CACHE_ENV = "EDUCLOUD_INVENTORY_CACHE"
_read: dict[tuple[str, float], dict[str, Any]] = {}


def _stamp(inventory: Path) -> float:
    """The newest change under the inventory: a cached reading is valid until then."""
    files = [inventory] if inventory.is_file() else [p for p in inventory.rglob("*") if p.is_file()]
    return max((f.stat().st_mtime for f in files), default=0.0)


def _listing(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list`, read once per process and change of the inventory's
    files (or taken from the file CACHE_ENV names, if it was written for this state)."""
    key = (str(inventory), _stamp(inventory))
    if key in _read:
        return _read[key]
    cached = os.environ.get(CACHE_ENV)
    if cached and Path(cached).is_file():
        saved = json.loads(Path(cached).read_text(encoding="utf-8"))
        if [saved.get("inventory"), saved.get("stamp")] == list(key):
            _read[key] = saved["listing"]
            return _read[key]
    _read[key] = _ansible_inventory(inventory)
    return _read[key]


def write_cache(inventory: Path, path: Path) -> None:
    """Save the inventory's reading for another process (see CACHE_ENV); it holds what
    `ansible-inventory --list` prints: vaulted values stay encrypted."""
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    listing = _listing(inventory)
    path.touch(mode=0o600)
    path.write_text(
        json.dumps({"inventory": str(inventory), "stamp": _stamp(inventory), "listing": listing}),
        encoding="utf-8",
    )


def load(inventory: Path) -> list[InventoryHost]:
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    data = _listing(inventory)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    membership: dict[str, list[str]] = {}
    for group, hosts in group_members(data).items():
        if group == "all":  # as Ansible's group_names: every host is in it
            continue
        for host in hosts:
            membership.setdefault(host, []).append(group)
    return [
        InventoryHost(name, tuple(sorted(membership.get(name, []))), hostvars.get(name, {}))
        for name in sorted(set(hostvars) | set(membership))
    ]


def group_members(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Each group's hosts, those of its child groups included, at any depth.

    `ansible-inventory --list` lists under a group only the hosts placed in it directly; a
    host placed in a child group (`nextcloud: children: {nextcloud_paris: ...}`) is a
    member for Ansible's plays all the same, and must be for every check that looks for the
    group's hosts (missing it would make those checks find no host to look at)."""
    groups = {g: b for g, b in listing.items() if g != "_meta" and isinstance(b, dict)}
    found: dict[str, set[str]] = {}

    def members(group: str, seen: frozenset[str]) -> set[str]:
        if group in found:
            return found[group]
        body = groups.get(group, {})
        hosts = {str(h) for h in body.get("hosts", [])}
        for child in body.get("children", []):
            if child not in seen:  # Ansible refuses cycles; never loop on one
                hosts |= members(str(child), seen | {child})
        found[group] = hosts
        return hosts

    for group in groups:
        members(group, frozenset({group}))
    return found


def _ansible_inventory(inventory: Path) -> dict[str, Any]:
    argv = [
        str(Path(sys.executable).parent / "ansible-inventory"),
        "-i",
        str(inventory),
        "--list",  # not --export: group variables merged into each host, as plays see them
    ]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=ansible_env(inventory),
        cwd=ansible_dir(),
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise EducloudError(
            f"cannot read inventory {inventory}: {explain_failure(inventory, result.stderr)}"
        )
    listing: dict[str, Any] = json.loads(result.stdout)
    return listing
