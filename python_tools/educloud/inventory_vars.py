"""An inventory's hosts, groups and variables, as Ansible itself resolves them."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from educloud.deploy import ansible_env
from educloud.errors import EducloudError
from educloud.paths import ansible_dir, repo_root


@dataclass(frozen=True)
class InventoryHost:
    name: str
    groups: tuple[str, ...]
    variables: dict[str, Any]

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


def load(inventory: Path) -> list[InventoryHost]:
    inventory = inventory if inventory.is_absolute() else repo_root() / inventory
    argv = [
        str(Path(sys.executable).parent / "ansible-inventory"),
        "-i",
        str(inventory),
        "--list",  # not --export: group variables merged into each host, as plays see them
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=ansible_env(), cwd=ansible_dir(), check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EducloudError(f"cannot read inventory {inventory}: {last}")
    data = json.loads(result.stdout)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    membership: dict[str, list[str]] = {}
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        for host in body.get("hosts", []):
            membership.setdefault(host, []).append(group)
    return [
        InventoryHost(name, tuple(sorted(membership.get(name, []))), hostvars.get(name, {}))
        for name in sorted(set(hostvars) | set(membership))
    ]
