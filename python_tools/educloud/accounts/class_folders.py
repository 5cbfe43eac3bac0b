"""A Nextcloud group folder per class, through the Nextcloud client (educloud.clients.nextcloud).

Each class group of the realm has a Nextcloud group of the same name (user_oidc fills its
members from the `groups` claim at login) and a group folder granted to it: read-write
without re-sharing while the class is current, read-only once archived at the rollover
(its files stay under the retention policy, C7). A folder is found by the group it is
granted to, so renaming a mount point by hand does not make a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from educloud.accounts.model import GroupKind, GroupState
from educloud.clients.nextcloud import GroupFolder, NextcloudClient, Permission

CURRENT = Permission.READ | Permission.UPDATE | Permission.CREATE | Permission.DELETE
ARCHIVED = Permission.READ


@dataclass(frozen=True)
class FolderChange:
    action: str  # "create group", "create folder", "set permissions"
    group: str
    mount_point: str
    permissions: int


def mount_point(group: GroupState) -> str:
    year = f" {group.year}-{group.year + 1}" if group.year is not None else ""
    return f"Classe {group.label}{year} ({group.uai})"


def plan_folders(
    groups: Iterable[GroupState], existing_groups: set[str], folders: list[GroupFolder]
) -> list[FolderChange]:
    """What Nextcloud lacks for the class groups: groups, folders, permissions."""
    by_group = {name: folder for folder in folders for name in folder.groups}
    changes = []
    for group in sorted(groups, key=lambda g: g.name):
        if group.kind is not GroupKind.CLASS:
            continue
        wanted = int(ARCHIVED if group.archived_on else CURRENT)
        point = mount_point(group)
        if group.name not in existing_groups:
            changes.append(FolderChange("create group", group.name, point, wanted))
        folder = by_group.get(group.name)
        if folder is None:
            changes.append(FolderChange("create folder", group.name, point, wanted))
        elif folder.groups[group.name] != wanted:
            changes.append(FolderChange("set permissions", group.name, point, wanted))
    return changes


def sync_class_folders(client: NextcloudClient, groups: Iterable[GroupState]) -> list[FolderChange]:
    """Apply `plan_folders` and return what was done (nothing on a second run)."""
    folders = client.list_group_folders()
    changes = plan_folders(groups, set(client.list_groups()), folders)
    by_mount = {folder.mount_point: folder for folder in folders}
    for change in changes:
        if change.action == "create group":
            client.create_group(change.group)
        elif change.action == "create folder":
            # A folder created by an interrupted run, before it was granted: reuse it.
            folder = by_mount.get(change.mount_point) or client.create_group_folder(
                change.mount_point
            )
            client.grant_group_folder(folder.id, change.group, change.permissions)
        else:
            folder = next(f for f in folders if change.group in f.groups)
            client.grant_group_folder(folder.id, change.group, change.permissions)
    return changes
