"""The backup agent of each backup host, called over SSH as Ansible reaches the host."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from educloud.backup.status import (
    STATUS_FILE,
    BackupError,
    BackupStatus,
    Snapshot,
    StatusReader,
    parse_snapshots,
    parse_status,
)
from educloud.deployment import inventory as inventory_vars
from educloud.deployment.inventory import InventoryHost
from educloud.remote import Answer
from educloud.remote import call as remote_call

AGENT = "/usr/local/sbin/educloud-backup"
SERVICE = "educloud-backup.service"
BACKUP_GROUP = "backup"
TARGET_GROUP = "backup_target"


def backup_hosts(inventory: Path, names: Sequence[str] = ()) -> list[InventoryHost]:
    """The inventory's backup hosts (or the named ones, which must be backup hosts)."""
    hosts = inventory_vars.load(inventory)
    found = [h for h in hosts if BACKUP_GROUP in h.groups]
    if not found:
        raise BackupError(f"inventory {inventory} has no host in the {BACKUP_GROUP} group")
    if names:
        known = {h.name for h in found}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BackupError(
                f"not a backup host of {inventory}: {', '.join(unknown)} "
                f"(backup hosts: {', '.join(sorted(known))})"
            )
        found = [h for h in found if h.name in names]
    return found


class RemoteAgent:
    """`educloud-backup` on one backup host, as root (sudo -n when Ansible's user is not)."""

    def __init__(self, host: InventoryHost, *, agent: str = AGENT) -> None:
        self.host = host
        self.agent = agent

    @property
    def name(self) -> str:
        return self.host.name

    def call(self, command: Sequence[str], *, timeout: float = 600.0) -> Answer:
        return remote_call(self.host, command, timeout=timeout, error=BackupError)

    def status(self) -> BackupStatus | None:
        """The last run and the snapshots it saw; None when the agent never ran."""
        answer = self.call(["cat", STATUS_FILE], timeout=60)
        if answer.returncode != 0:
            if "No such file" in answer.stderr:
                return None
            raise BackupError(f"{self.name}: cannot read {STATUS_FILE}: {answer.said()}")
        return parse_status(answer.stdout, f"{self.name}:{STATUS_FILE}")

    def snapshots(self) -> tuple[Snapshot, ...]:
        answer = self.call([self.agent, "snapshots"], timeout=600)
        if answer.returncode != 0:
            raise BackupError(f"{self.name}: educloud-backup snapshots failed: {answer.said()}")
        try:
            data = json.loads(answer.stdout)
        except json.JSONDecodeError:
            raise BackupError(
                f"{self.name}: educloud-backup snapshots did not print JSON: {answer.said()}"
            ) from None
        return parse_snapshots(data, f"{self.name}: snapshots")

    def check(self, *, read_data: bool, timeout: float) -> Answer:
        """restic check (every pack read back and hashed with read_data): exit code as is."""
        return self.call(
            [self.agent, "check", *(["--read-data"] if read_data else [])], timeout=timeout
        )

    def run(self, *, timeout: float) -> tuple[Answer, BackupStatus | None]:
        """Start the service (what the timer starts) and wait for it to end; a run already
        in progress is waited for, not doubled."""
        started = self.call(["systemctl", "start", SERVICE], timeout=timeout)
        return started, self.status()


def inventory_readers(inventory: Path) -> list[tuple[str, StatusReader]]:
    """Each backup host of the inventory, its status file read over SSH."""
    hosts = [h for h in inventory_vars.load(inventory) if BACKUP_GROUP in h.groups]
    return [(h.name, RemoteAgent(h).status) for h in hosts]
