"""The OCS half of educloud's Nextcloud client: users, groups, group folders and shares.

nextcloud-api-wrapper builds the provisioning and sharing requests; they go out through
educloud's session (educloud.clients.nextcloud.http) and every answer is read there.
Group folders go through requests directly, where the wrapper is wrong or missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any

from educloud.clients.nextcloud.http import (
    ApiBase,
    NextcloudError,
    NextcloudNoSuchAccountError,
    NextcloudRequestError,
    as_bool,
    clean_path,
    segment,
)

QUOTA_UNLIMITED = -3
"""Group folder quota meaning "no limit" (groupfolders README)."""

# groupfolders README "REST API" and its maintainer in nextcloud/groupfolders#63:
# index.php/apps/groupfolders/folders, index.php can be dropped with pretty URLs only.
_GROUP_FOLDERS = "/index.php/apps/groupfolders/folders"


class ShareType(IntEnum):
    """OCS share API shareType values (ocs-share-api "Create a new Share")."""

    USER = 0
    GROUP = 1
    PUBLIC_LINK = 3
    EMAIL = 4
    FEDERATED = 6
    CIRCLE = 7
    TALK_ROOM = 10


class Permission(IntFlag):
    """Share and group folder permission bits (ocs-share-api, groupfolders README)."""

    READ = 1
    UPDATE = 2
    CREATE = 4
    DELETE = 8
    SHARE = 16
    ALL = 31


@dataclass(frozen=True)
class User:
    id: str
    display_name: str
    email: str | None
    enabled: bool
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    id: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupFolder:
    id: int
    mount_point: str
    groups: Mapping[str, int] = field(default_factory=dict)
    """Group id to its Permission bits."""
    quota: int = QUOTA_UNLIMITED
    size: int = 0
    acl: bool = False


@dataclass(frozen=True)
class Share:
    id: str
    share_type: int
    """A ShareType value."""
    path: str
    permissions: int
    share_with: str | None = None
    """The user or group shared with; None for a public link."""
    token: str | None = None
    url: str | None = None
    file_id: int | None = None


class OcsApi(ApiBase):
    """Users, groups, group folders and shares of one Nextcloud account (NextcloudClient)."""

    # -- users: OCS provisioning API, instruction set for users --------------------------
    # https://docs.nextcloud.com/server/latest/admin_manual/configuration_user/instruction_set_for_users.html

    def list_users(self, search: str | None = None) -> list[str]:
        """User ids, all or those matching `search`."""
        data = self._ocs("list users", lambda: self._wrapper.get_users(search=search))
        return [str(user_id) for user_id in _field(data, "users", "list users")]

    def get_user(self, user_id: str) -> User:
        what = f"get user {user_id}"
        hints = {404: f"no user {user_id}: check the id (list_users)"}
        data = self._ocs(what, lambda: self._wrapper.get_user(segment(user_id)), hints)
        return _user(data, what)

    def storage_used(self, user_id: str) -> int | None:
        """Bytes the user's files take (the provisioning API's `quota.used`); None: no user.

        user_oidc creates the Nextcloud account at its first login, so an account of the
        directory that never used Nextcloud has none. Nextcloud gives `used` 0 while the
        user's storage is not set up yet (UsersController::fillStorageInfo).
        """
        what = f"read the storage used by {user_id}"
        try:
            data = self._ocs(what, lambda: self._wrapper.get_user(segment(user_id)))
        except NextcloudRequestError as exc:
            if exc.ocs_status == 404 or exc.http_status == 404:
                return None
            raise
        quota = data.get("quota") if isinstance(data, dict) else None
        used = quota.get("used", 0) if isinstance(quota, dict) else 0
        try:
            return max(int(used), 0)
        except (TypeError, ValueError):
            raise NextcloudRequestError(
                f"{what}: quota.used is {used!r}, not a number of bytes", http_status=200
            ) from None

    def create_user(
        self,
        user_id: str,
        password: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
    ) -> User:
        """Create the account, then set its display name and email (separate calls)."""
        what = f"create user {user_id}"
        hints = {
            101: "the user id is not valid: letters, digits and _.@-' only",
            102: f"{user_id} already exists: use get_user, or pick another id",
            107: "the password policy refused the password: choose a stronger one",
        }
        self._ocs(what, lambda: self._wrapper.add_user(user_id, password), hints, (password,))
        for key, value in (("displayname", display_name), ("email", email)):
            if value is not None:
                self._ocs(
                    f"{what}: set {key} (the user exists already)",
                    functools.partial(self._wrapper.edit_user, segment(user_id), key, value),
                )
        return self.get_user(user_id)

    def enable_user(self, user_id: str) -> None:
        self._ocs(f"enable user {user_id}", lambda: self._wrapper.enable_user(segment(user_id)))

    def disable_user(self, user_id: str) -> None:
        self._ocs(f"disable user {user_id}", lambda: self._wrapper.disable_user(segment(user_id)))

    def delete_user(self, user_id: str) -> None:
        """Delete the account; NextcloudNoSuchAccountError when Nextcloud has none of that id
        (user_oidc creates accounts at first login: one who never used Nextcloud has none).

        UsersController::deleteUser (nextcloud/server apps/provisioning_api) answers
        RESPOND_NOT_FOUND, OCS 998 (v1: HTTP 200; v2: HTTP 404), both for an id it does
        not have and for an account the caller may not delete (nextcloud/server#28894);
        101 for the caller's own account or a user backend that refused. A 998 is told
        apart by reading the account: getUserData answers OCS 404 "User does not exist"
        for a missing id before it looks at the caller's rights.
        """
        what = f"delete user {user_id}"
        hints = {
            101: f"{self.user} cannot delete its own account, or the account's user backend "
            "refused (see nextcloud.log)",
            998: f"{self.user} may not delete {user_id}: an administrator is needed",
        }
        try:
            self._ocs(what, lambda: self._wrapper.delete_user(segment(user_id)), hints)
        except NextcloudRequestError as exc:
            if exc.ocs_status != 998 or not self._no_such_user(user_id):
                raise
            raise NextcloudNoSuchAccountError(
                f"{what}: Nextcloud has no account {user_id}",
                user_id=user_id,
                http_status=exc.http_status,
                ocs_status=exc.ocs_status,
            ) from None

    def _no_such_user(self, user_id: str) -> bool:
        """Whether Nextcloud says it has no account `user_id` (OCS 404 on getUser)."""
        try:
            self._ocs(f"get user {user_id}", lambda: self._wrapper.get_user(segment(user_id)))
        except NextcloudRequestError as exc:
            return exc.ocs_status == 404
        return False

    # -- groups: OCS provisioning API, instruction set for groups ------------------------
    # https://docs.nextcloud.com/server/latest/admin_manual/configuration_user/instruction_set_for_groups.html

    def list_groups(self, search: str | None = None) -> list[str]:
        data = self._ocs("list groups", lambda: self._wrapper.get_groups(search=search))
        return [str(group_id) for group_id in _field(data, "groups", "list groups")]

    def get_group(self, group_id: str) -> Group:
        """The group and its members."""
        what = f"get group {group_id}"
        # Provisioning's getGroup answers OCS 998 (v1) / 404 (v2) for an unknown group.
        hint = f"no group {group_id}: check the id (list_groups)"
        hints = {404: hint, 998: hint}
        data = self._ocs(what, lambda: self._wrapper.get_group(segment(group_id)), hints)
        return Group(group_id, tuple(str(m) for m in _field(data, "users", what)))

    def create_group(self, group_id: str) -> Group:
        hints = {102: f"group {group_id} already exists: use get_group"}
        self._ocs(f"create group {group_id}", lambda: self._wrapper.add_group(group_id), hints)
        return Group(group_id)

    def delete_group(self, group_id: str) -> None:
        what = f"delete group {group_id}"
        self._ocs(what, lambda: self._wrapper.delete_group(segment(group_id)))

    def add_member(self, group_id: str, user_id: str) -> None:
        hints = {
            102: f"group {group_id} does not exist: create it first",
            103: f"user {user_id} does not exist: create it first",
        }
        self._ocs(
            f"add {user_id} to group {group_id}",
            lambda: self._wrapper.add_to_group(segment(user_id), group_id),
            hints,
        )

    def remove_member(self, group_id: str, user_id: str) -> None:
        hints = {
            102: f"group {group_id} does not exist",
            103: f"user {user_id} does not exist",
        }
        self._ocs(
            f"remove {user_id} from group {group_id}",
            lambda: self._wrapper.remove_from_group(segment(user_id), group_id),
            hints,
        )

    # -- group folders: groupfolders app REST API, with requests (see the module doc) ----
    # https://github.com/nextcloud/groupfolders#rest-api (answers: FolderController,
    # a v1 OCS envelope; folders keyed by id; PHP writes an empty map as []).

    def list_group_folders(self) -> list[GroupFolder]:
        data = self._group_folders("list group folders", "GET", "")
        folders = data.values() if isinstance(data, dict) else data
        return sorted((_group_folder(f) for f in folders), key=lambda folder: folder.id)

    def get_group_folder(self, folder_id: int) -> GroupFolder:
        data = self._group_folders(f"get group folder {folder_id}", "GET", f"/{folder_id}")
        return _group_folder(data)

    def create_group_folder(self, mount_point: str) -> GroupFolder:
        what = f"create group folder {mount_point}"
        hints = {400: f"a group folder {mount_point} exists already: use list_group_folders"}
        data = self._group_folders(what, "POST", "", {"mountpoint": mount_point}, hints)
        if "mount_point" in data:
            return _group_folder(data)
        return self.get_group_folder(int(data["id"]))  # groupfolders before 17 answer {id}

    def grant_group_folder(
        self, folder_id: int, group_id: str, permissions: int = Permission.ALL
    ) -> GroupFolder:
        """Give `group_id` access to the folder with `permissions` (Permission bits)."""
        what = f"grant group {group_id} group folder {folder_id}"
        self._group_folders(what, "POST", f"/{folder_id}/groups", {"group": group_id})
        data = self._group_folders(
            f"{what} (set permissions {permissions})",
            "POST",
            f"/{folder_id}/groups/{segment(group_id)}",
            {"permissions": int(permissions)},
        )
        return self._folder_in(data, folder_id)

    def revoke_group_folder(self, folder_id: int, group_id: str) -> GroupFolder:
        what = f"revoke group {group_id} from group folder {folder_id}"
        data = self._group_folders(what, "DELETE", f"/{folder_id}/groups/{segment(group_id)}")
        return self._folder_in(data, folder_id)

    def set_group_folder_quota(self, folder_id: int, quota_bytes: int) -> GroupFolder:
        """Quota in bytes, or QUOTA_UNLIMITED."""
        what = f"set quota {quota_bytes} on group folder {folder_id}"
        data = self._group_folders(what, "POST", f"/{folder_id}/quota", {"quota": quota_bytes})
        return self._folder_in(data, folder_id)

    def delete_group_folder(self, folder_id: int) -> None:
        self._group_folders(f"delete group folder {folder_id}", "DELETE", f"/{folder_id}")

    # -- shares: OCS share API -----------------------------------------------------------
    # https://docs.nextcloud.com/server/latest/developer_manual/client_apis/OCS/ocs-share-api.html
    # (fields: ShareAPIController::formatShare in nextcloud/server apps/files_sharing)

    def list_shares(self, path: str | None = None, *, reshares: bool = False) -> list[Share]:
        """Shares made by this user, or those of one file or folder. With `reshares`, also
        the shares other accounts made of this user's files (GET shares?reshares=true
        without a path: ShareAPIController::getShares passes it to the share manager's
        getSharesBy, which then matches the files' owner as well as the sharer)."""
        if path is None and reshares:
            # The wrapper's get_shares takes no parameter: its requester, with the one added.
            api = self._wrapper.get_shares.__self__
            data = self._ocs(
                "list shares and reshares",
                lambda: api.requester.get(api.get_local_url(), params={"reshares": "true"}),
            )
        elif path is None:
            data = self._ocs("list shares", self._wrapper.get_shares)
        else:
            what = f"list shares of {path}"
            hints = {404: f"{path} does not exist in {self.user}'s files"}
            data = self._ocs(
                what, lambda: self._wrapper.get_shares_from_path(_share_path(path)), hints
            )
        return [_share(item) for item in data or []]

    def share_with_user(self, path: str, user_id: str, permissions: int | None = None) -> Share:
        """Share `path` with `user_id` (server default permissions when None)."""
        return self._create_share(path, ShareType.USER, user_id, permissions)

    def share_with_group(self, path: str, group_id: str, permissions: int | None = None) -> Share:
        return self._create_share(path, ShareType.GROUP, group_id, permissions)

    def create_public_link(self, path: str, *, password: str | None = None) -> Share:
        """A read-only public link, optionally password protected."""
        return self._create_share(path, ShareType.PUBLIC_LINK, None, None, password)

    def delete_share(self, share_id: str) -> None:
        hints = {404: f"no share {share_id}: list_shares shows the ids"}
        self._ocs(
            f"delete share {share_id}",
            lambda: self._wrapper.delete_share(segment(share_id)),
            hints,
        )

    def _create_share(
        self,
        path: str,
        share_type: ShareType,
        share_with: str | None,
        permissions: int | None,
        password: str | None = None,
    ) -> Share:
        target = f" with {share_with}" if share_with else " as a public link"
        what = f"share {path}{target}"
        hints = {
            400: "this Nextcloud does not know the share type",
            403: "sharing this way is disabled by the administrator",
            404: f"{path} or {share_with or 'the link'} does not exist, or sharing is off",
        }
        data = self._ocs(
            what,
            lambda: self._wrapper.create_share(
                _share_path(path),
                int(share_type),
                share_with=share_with,
                password=password,
                permissions=None if permissions is None else int(permissions),
            ),
            hints,
            (password,) if password else (),
        )
        return _share(data)

    # -- the plumbing ----------------------------------------------------------------------

    def _ocs(
        self,
        what: str,
        call: Callable[[], Any],
        hints: Mapping[int, str] | None = None,
        hidden: Iterable[str] = (),
    ) -> Any:
        """The data of a wrapper OCS call; `hidden` are more secrets to keep out of errors."""
        response = self._wrapped(what, call)
        if response is False:  # the wrapper's own refusal of incomplete share arguments
            raise NextcloudError(f"{what}: incomplete arguments for the share API")
        return self._http.ocs_data(what, response.raw, hints or {}, tuple(hidden))

    def _group_folders(
        self,
        what: str,
        method: str,
        path: str,
        data: Mapping[str, Any] | None = None,
        hints: Mapping[int, str] | None = None,
    ) -> Any:
        response = self._http.send(
            method,
            self._http.url(_GROUP_FOLDERS + path),
            params={"format": "json"},
            headers={"Accept": "application/json"},
            data=data,
        )
        merged = {
            403: f"{self.user} is not an administrator (or a group folder admin)",
            404: "no such group folder (or the groupfolders app is not enabled)",
            **(hints or {}),
        }
        return self._http.ocs_data(what, response, merged)

    def _folder_in(self, data: Any, folder_id: int) -> GroupFolder:
        if isinstance(data, dict) and isinstance(data.get("folder"), dict):
            return _group_folder(data["folder"])
        return self.get_group_folder(folder_id)  # groupfolders before 17 answer {success}


def _share_path(path: str) -> str:
    return "/" + clean_path(path)


def _field(data: Any, key: str, what: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise NextcloudRequestError(f"{what}: the answer has no {key} list", http_status=200)
    return value


def _user(data: Any, what: str) -> User:
    if not isinstance(data, dict) or "id" not in data:
        raise NextcloudRequestError(f"{what}: the answer has no user", http_status=200)
    return User(
        id=str(data["id"]),
        display_name=str(data.get("displayname") or data.get("display-name") or data["id"]),
        email=str(data["email"]) if data.get("email") else None,
        enabled=as_bool(data.get("enabled")),
        groups=tuple(str(g) for g in data.get("groups") or ()),
    )


def _group_folder(data: Any) -> GroupFolder:
    groups = data.get("groups") or {}  # [] when empty (PHP)
    return GroupFolder(
        id=int(data["id"]),
        mount_point=str(data["mount_point"]),
        groups={
            str(gid): int(value["permissions"] if isinstance(value, dict) else value)
            for gid, value in (groups.items() if isinstance(groups, dict) else ())
        },
        quota=int(data.get("quota", QUOTA_UNLIMITED)),
        size=int(data.get("size") or 0),
        acl=as_bool(data.get("acl")),
    )


def _share(data: Any) -> Share:
    share_type = int(data["share_type"])
    # A link share's share_with is its (hashed) password: never surface it.
    share_with = data.get("share_with") if share_type != ShareType.PUBLIC_LINK else None
    return Share(
        id=str(data["id"]),
        share_type=share_type,
        path=str(data.get("path") or ""),
        permissions=int(data.get("permissions") or 0),
        share_with=str(share_with) if share_with is not None else None,
        token=str(data["token"]) if data.get("token") else None,
        url=str(data["url"]) if data.get("url") else None,
        file_id=int(data["file_source"]) if data.get("file_source") is not None else None,
    )
