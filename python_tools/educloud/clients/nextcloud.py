"""Nextcloud's HTTP APIs for educloud's tools: users, groups, group folders, shares, tags, files.

A typed facade over nextcloud-api-wrapper (docs/decisions/0004-nextcloud-api-client.md).
The wrapper builds the provisioning, sharing and system-tag requests; this module sends
them (its own requests session: timeout, CA bundle, the OCS-APIRequest header on every
call) and reads every answer itself. Group folders and WebDAV files go through requests
directly, where the wrapper is wrong or missing. Failures are NextcloudError (an
EducloudError) saying what failed and what to do, never with the app password in them.

Only loopback and the lab range are targeted (educloud.netpin.check_target) unless
EDUCLOUD_ALLOW_PUBLIC_TARGETS=1; lab names (*.test) must be pinned with
educloud.netpin.pinned_names, they are never looked up in DNS.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import IntEnum, IntFlag
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree as ET

import nextcloud
import requests

from educloud.errors import EducloudError
from educloud.netpin import check_target

QUOTA_UNLIMITED = -3
"""Group folder quota meaning "no limit" (groupfolders README)."""

_DAV = "{DAV:}"
_Parsed = TypeVar("_Parsed")
_OC = "{http://owncloud.org/ns}"
_LAB_SUFFIX = ".test"
# groupfolders README "REST API" and its maintainer in nextcloud/groupfolders#63:
# index.php/apps/groupfolders/folders, index.php can be dropped with pretty URLs only.
_GROUP_FOLDERS = "/index.php/apps/groupfolders/folders"
DOWNLOAD_CHUNK = 1 << 20
"""Bytes per chunk of a streamed download (stream_download, stream_calendar...)."""
_CALDAV_CALENDAR = "{urn:ietf:params:xml:ns:caldav}calendar"
_CARDDAV_ADDRESSBOOK = "{urn:ietf:params:xml:ns:carddav}addressbook"
# Address books the server builds from other accounts (the system address book): not
# data the user created (apps/dav/lib/CardDAV/SyncService and ContactsManager).
_GENERATED_BOOK_PREFIXES = ("z-server-generated--", "z-app-generated--")


class NextcloudError(EducloudError):
    """A Nextcloud call failed; the message says which one and what to do."""


class NextcloudTargetError(NextcloudError):
    """The base URL is not one this process may target (netpin)."""


class NextcloudConnectionError(NextcloudError):
    """No HTTP answer: name resolution, connection, TLS or timeout."""


class NextcloudAuthError(NextcloudError):
    """Nextcloud refused the user name or app password (HTTP 401, OCS 997)."""


class NextcloudRequestError(NextcloudError):
    """Nextcloud answered with a failure: an HTTP error or an OCS status code."""

    def __init__(self, message: str, *, http_status: int, ocs_status: int | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.ocs_status = ocs_status


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


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    user_visible: bool = True
    user_assignable: bool = True


@dataclass(frozen=True)
class DavEntry:
    path: str
    """Relative to the user's files, without a leading slash ("" is the root)."""
    is_dir: bool
    file_id: int | None = None
    size: int | None = None
    etag: str | None = None
    content_type: str | None = None
    last_modified: datetime | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DavCollection:
    """A calendar or an address book of the user's DAV home."""

    name: str
    """The last segment of its URL, as stream_calendar / stream_address_book take it."""
    display_name: str
    resource_types: frozenset[str] = frozenset()
    """Clark names of its d:resourcetype children, e.g. {urn:ietf:params:xml:ns:caldav}calendar."""
    owner_principal: str | None = None


class NextcloudClient:
    """One Nextcloud account (an admin for provisioning and group folders).

    `app_password` is an app password or the account's password; it is sent as HTTP
    basic auth and appears in no repr, log or error message. `verify` is True, False or
    a CA bundle path (the lab's CA); `timeout` applies to each request, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        app_password: str,
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if "@" in parts.netloc:  # checked first: such a URL is never repeated in a message
            raise NextcloudError(
                "the Nextcloud base URL carries credentials: remove them from the URL and "
                "pass the user and app password separately"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or not port:
            raise NextcloudError(
                f"{base_url!r} is not a Nextcloud base URL: give https://host[:port][/path]"
            )
        if isinstance(verify, str) and not Path(verify).is_file():
            raise NextcloudError(f"CA bundle {verify} not found: give the deployment's CA file")
        _check_target_host(parts.hostname, port)
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.user = user
        self._http = _Http(
            origin=f"{parts.scheme}://{parts.netloc}",
            base_path=parts.path.rstrip("/"),
            user=user,
            password=app_password,
            verify=verify,
            timeout=timeout,
        )
        self._wrapper = nextcloud.NextCloud(session=_WrapperSession(self._http, user))

    def __repr__(self) -> str:
        return f"NextcloudClient(base_url={self.base_url!r}, user={self.user!r})"

    # -- users: OCS provisioning API, instruction set for users --------------------------
    # https://docs.nextcloud.com/server/latest/admin_manual/configuration_user/instruction_set_for_users.html

    def list_users(self, search: str | None = None) -> list[str]:
        """User ids, all or those matching `search`."""
        data = self._ocs("list users", lambda: self._wrapper.get_users(search=search))
        return [str(user_id) for user_id in _field(data, "users", "list users")]

    def get_user(self, user_id: str) -> User:
        what = f"get user {user_id}"
        hints = {404: f"no user {user_id}: check the id (list_users)"}
        data = self._ocs(what, lambda: self._wrapper.get_user(_segment(user_id)), hints)
        return _user(data, what)

    def storage_used(self, user_id: str) -> int | None:
        """Bytes the user's files take (the provisioning API's `quota.used`); None: no user.

        user_oidc creates the Nextcloud account at its first login, so an account of the
        directory that never used Nextcloud has none. Nextcloud gives `used` 0 while the
        user's storage is not set up yet (UsersController::fillStorageInfo).
        """
        what = f"read the storage used by {user_id}"
        try:
            data = self._ocs(what, lambda: self._wrapper.get_user(_segment(user_id)))
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
                    functools.partial(self._wrapper.edit_user, _segment(user_id), key, value),
                )
        return self.get_user(user_id)

    def enable_user(self, user_id: str) -> None:
        self._ocs(f"enable user {user_id}", lambda: self._wrapper.enable_user(_segment(user_id)))

    def disable_user(self, user_id: str) -> None:
        self._ocs(f"disable user {user_id}", lambda: self._wrapper.disable_user(_segment(user_id)))

    def delete_user(self, user_id: str) -> None:
        self._ocs(f"delete user {user_id}", lambda: self._wrapper.delete_user(_segment(user_id)))

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
        data = self._ocs(what, lambda: self._wrapper.get_group(_segment(group_id)), hints)
        return Group(group_id, tuple(str(m) for m in _field(data, "users", what)))

    def create_group(self, group_id: str) -> Group:
        hints = {102: f"group {group_id} already exists: use get_group"}
        self._ocs(f"create group {group_id}", lambda: self._wrapper.add_group(group_id), hints)
        return Group(group_id)

    def delete_group(self, group_id: str) -> None:
        what = f"delete group {group_id}"
        self._ocs(what, lambda: self._wrapper.delete_group(_segment(group_id)))

    def add_member(self, group_id: str, user_id: str) -> None:
        hints = {
            102: f"group {group_id} does not exist: create it first",
            103: f"user {user_id} does not exist: create it first",
        }
        self._ocs(
            f"add {user_id} to group {group_id}",
            lambda: self._wrapper.add_to_group(_segment(user_id), group_id),
            hints,
        )

    def remove_member(self, group_id: str, user_id: str) -> None:
        hints = {
            102: f"group {group_id} does not exist",
            103: f"user {user_id} does not exist",
        }
        self._ocs(
            f"remove {user_id} from group {group_id}",
            lambda: self._wrapper.remove_from_group(_segment(user_id), group_id),
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
            f"/{folder_id}/groups/{_segment(group_id)}",
            {"permissions": int(permissions)},
        )
        return self._folder_in(data, folder_id)

    def revoke_group_folder(self, folder_id: int, group_id: str) -> GroupFolder:
        what = f"revoke group {group_id} from group folder {folder_id}"
        data = self._group_folders(what, "DELETE", f"/{folder_id}/groups/{_segment(group_id)}")
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
            lambda: self._wrapper.delete_share(_segment(share_id)),
            hints,
        )

    def public_link_active(self, token: str) -> bool:
        """Whether the public link /s/<token> still opens, as for anyone following it.

        The OCS share API lists and deletes only the caller's own shares (ocs-share-api
        "Get all Shares"; ShareAPIController::canDeleteShare in nextcloud/server allows the
        owner, the sharer or the recipient, and no admin): this is how a share of another
        account is known to be gone. 404 is gone; 200 (the page) or 303 (a password
        prompt, ShareController) is active.
        """
        what = f"open public link {_public_token(token)}"
        response = self._http.send("GET", self._http.url(f"/index.php/s/{token}"))
        if response.status_code == 404:
            return False
        if response.status_code in (200, 302, 303):
            return True
        self._http.expect(what, response, (200,))
        return True  # not reached: expect raised

    def public_link_owner(self, token: str) -> str | None:
        """The account whose file the public link /s/<token> shares, as anyone following
        the link can read it; None when the link is password protected.

        Nextcloud >= 29 serves a public link's files at /public.php/dav/files/<token>
        without an account, or with "anonymous" and the link's password (developer manual,
        client_apis/WebDAV/basic.rst "Public shares"); its oc:owner-id is the owner's uid
        (apps/dav FilesPlugin). The request carries no credentials: this client's password
        is not sent to a public endpoint.
        """
        what = f"read the owner of public link {_public_token(token)}"
        url = self._http.url(f"/public.php/dav/files/{token}")
        response = self._http.send(
            "PROPFIND",
            url,
            headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
            data=_OWNER_PROPFIND_BODY,
            anonymous=True,
        )
        if response.status_code == 401:
            return None  # the link's password is asked for
        hints = {404: f"no public link {token}: it is gone (public_link_active)"}
        self._http.expect(what, response, (207,), hints)
        root = urlsplit(url).path
        found = self._http.dav_answer(
            what, response, lambda content: [props for _, props in _multistatus(content, root)]
        )
        owner = _prop_text(found[0], f"{_OC}owner-id") if found else None
        if not owner:
            raise NextcloudRequestError(
                f"{what}: no oc:owner-id in the answer: Nextcloud 29 or later is needed",
                http_status=response.status_code,
            )
        return owner

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

    # -- system tags: WebDAV systemtags and systemtags-relations -------------------------
    # No Nextcloud page documents them; ownCloud's (same code, apps/dav/lib/SystemTag):
    # https://doc.owncloud.com/server/next/developer_manual/webdav_api/tags.html

    def list_tags(self) -> list[Tag]:
        response = self._wrapped("list system tags", self._wrapper.fetch_systemtags)
        self._http.expect("list system tags", response.raw, (207,))
        # The collection itself comes first, without an oc:id.
        return [_tag(item) for item in response.data or [] if item.id is not None]

    def create_tag(
        self, name: str, *, user_visible: bool = True, user_assignable: bool = True
    ) -> Tag:
        """A new system tag (only admins may create invisible or restricted ones)."""
        what = f"create system tag {name}"
        response = self._wrapped(
            what,
            lambda: self._wrapper.create_systemtag(
                name, user_visible=user_visible, user_assignable=user_assignable
            ),
        )
        hints = {409: f"a tag {name} exists already: use list_tags"}
        self._http.expect(what, response.raw, (201,), hints)
        return Tag(int(response.data), name, user_visible, user_assignable)

    def assign_tag(self, file_id: int, tag_id: int) -> None:
        """Tag a file or folder (by its file id); assigning twice is not an error."""
        what = f"assign tag {tag_id} to file {file_id}"
        response = self._wrapped(
            what, lambda: self._wrapper.add_systemtags_relation(file_id=file_id, tag_id=tag_id)
        )
        hints = {
            404: f"no file with id {file_id} visible to {self.user}",
            412: f"no tag with id {tag_id}: list_tags shows the ids",
        }
        # 409: the tag is on the file already (Sabre refuses PUT on an existing node).
        self._http.expect(what, response.raw, (201, 409), hints)

    # -- files: WebDAV, with requests (see the module doc) -------------------------------
    # https://docs.nextcloud.com/server/latest/developer_manual/client_apis/WebDAV/basic.html

    def upload(self, path: str, content: bytes) -> None:
        """Write `content` to `path` in this user's files (replacing any file there)."""
        what = f"upload {path}"
        response = self._http.send("PUT", self._dav_url(path), data=content)
        hints = {
            409: "its folder does not exist: create it first (make_folder)",
            507: "the user's or the group folder's quota is exhausted",
        }
        self._http.expect(what, response, (201, 204), hints)

    def download(self, path: str) -> bytes:
        response = self._http.send("GET", self._dav_url(path))
        hints = {404: f"{path} does not exist in {self.user}'s files"}
        self._http.expect(f"download {path}", response, (200,), hints)
        return response.content

    def make_folder(self, path: str, *, exist_ok: bool = False) -> None:
        response = self._http.send("MKCOL", self._dav_url(path))
        if exist_ok and response.status_code == 405:
            return
        hints = {
            405: f"{path} exists already (exist_ok=True accepts that)",
            409: "its parent folder does not exist: create that first",
        }
        self._http.expect(f"make folder {path}", response, (201,), hints)

    def delete(self, path: str) -> None:
        """Delete a file, or a folder with its contents."""
        response = self._http.send("DELETE", self._dav_url(path))
        hints = {404: f"{path} does not exist in {self.user}'s files"}
        self._http.expect(f"delete {path}", response, (204,), hints)

    def list_folder(self, path: str = "") -> list[DavEntry]:
        """The entries directly in a folder (not the folder itself)."""
        folder = _clean_path(path)
        entries = self._propfind(f"list folder /{folder}", folder, depth=1)
        return [entry for entry in entries if entry.path != folder]

    def file_id(self, path: str) -> int:
        """The id Nextcloud gives the file or folder (oc:fileid), as tags and shares use."""
        what = f"file id of {path}"
        entries = self._propfind(what, _clean_path(path), depth=0)
        if not entries or entries[0].file_id is None:
            raise NextcloudRequestError(
                f"{what}: Nextcloud answered without an oc:fileid", http_status=207
            )
        return entries[0].file_id

    def stream_download(self, path: str, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        """The file's bytes in chunks of at most `chunk_size`: never the whole file in memory.

        The request is sent on the first iteration; the connection is released when the
        iterator is exhausted or closed.
        """
        return self._stream(
            f"download {path}",
            self._dav_url(path),
            chunk_size,
            {404: f"{path} does not exist in {self.user}'s files"},
        )

    def walk(self, path: str = "") -> Iterator[DavEntry]:
        """Every file and folder under `path`, parents first; one folder listed at a time."""
        pending = [_clean_path(path)]
        while pending:
            folder = pending.pop()
            entries = self.list_folder(folder)
            yield from entries
            # Reversed so that the first subfolder is walked first (sorted output).
            pending.extend(entry.path for entry in reversed(entries) if entry.is_dir)

    def _propfind(self, what: str, path: str, depth: int) -> list[DavEntry]:
        response = self._http.send(
            "PROPFIND",
            self._dav_url(path),
            headers={"Depth": str(depth), "Content-Type": "application/xml; charset=utf-8"},
            data=_PROPFIND_BODY,
        )
        hints = {404: f"{path or '/'} does not exist in {self.user}'s files"}
        self._http.expect(what, response, (207,), hints)
        root = unquote(urlsplit(self._dav_url("")).path)
        return self._http.dav_answer(what, response, lambda content: _dav_entries(content, root))

    def _dav_url(self, path: str) -> str:
        cleaned = _clean_path(path)
        quoted = "/".join(_segment(part) for part in cleaned.split("/")) if cleaned else ""
        return self._http.url(f"/remote.php/dav/files/{_segment(self.user)}/{quoted}")

    # -- calendars and contacts: CalDAV and CardDAV exports ----------------------------
    # https://docs.nextcloud.com/server/latest/developer_manual/client_apis/WebDAV/index.html
    # (calendars/<uid>/, addressbooks/users/<uid>/); "?export" answers the whole collection
    # as one iCalendar or vCard document (sabre's ICSExportPlugin and VCFExportPlugin).

    def list_calendars(self) -> list[DavCollection]:
        """This user's own calendars (not the scheduling inbox/outbox, the trash bin, or
        calendars others share with them)."""
        home = f"/remote.php/dav/calendars/{_segment(self.user)}/"
        found = self._collections(f"list calendars of {self.user}", home)
        return [c for c in found if _CALDAV_CALENDAR in c.resource_types and self._owns(c)]

    def list_address_books(self) -> list[DavCollection]:
        """This user's own address books (not the generated system address book, or books
        others share with them)."""
        home = f"/remote.php/dav/addressbooks/users/{_segment(self.user)}/"
        found = self._collections(f"list address books of {self.user}", home)
        return [
            c
            for c in found
            if _CARDDAV_ADDRESSBOOK in c.resource_types
            and not c.name.startswith(_GENERATED_BOOK_PREFIXES)
            and self._owns(c)
        ]

    def stream_calendar(self, name: str, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        """The calendar as one iCalendar document (text/calendar), in chunks."""
        url = self._http.url(f"/remote.php/dav/calendars/{_segment(self.user)}/{_segment(name)}")
        hints = {404: f"{self.user} has no calendar {name} (list_calendars)"}
        return self._stream(f"export calendar {name}", url + "?export", chunk_size, hints)

    def stream_address_book(self, name: str, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        """The address book as one vCard document (text/vcard), in chunks."""
        url = self._http.url(
            f"/remote.php/dav/addressbooks/users/{_segment(self.user)}/{_segment(name)}"
        )
        hints = {404: f"{self.user} has no address book {name} (list_address_books)"}
        return self._stream(f"export address book {name}", url + "?export", chunk_size, hints)

    def _owns(self, collection: DavCollection) -> bool:
        owner = collection.owner_principal
        return owner is None or owner.rstrip("/").rsplit("/", 1)[-1] == self.user

    def _collections(self, what: str, home: str) -> list[DavCollection]:
        response = self._http.send(
            "PROPFIND",
            self._http.url(home),
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            data=_COLLECTIONS_PROPFIND_BODY,
        )
        hints = {404: f"no such DAV home for {self.user} (is the dav app enabled?)"}
        self._http.expect(what, response, (207,), hints)
        root = self._http.base_path + home
        return self._http.dav_answer(
            what, response, lambda content: _dav_collections(content, root)
        )

    def _stream(
        self, what: str, url: str, chunk_size: int, hints: Mapping[int, str]
    ) -> Iterator[bytes]:
        response = self._http.send("GET", url, stream=True)
        try:
            self._http.expect(what, response, (200,), hints)
            try:
                yield from response.iter_content(chunk_size)
            except requests.exceptions.RequestException as exc:
                raise NextcloudConnectionError(
                    f"{what}: the download broke off ({type(exc).__name__}): run again"
                ) from exc
        finally:
            response.close()

    # -- the plumbing ----------------------------------------------------------------------

    def _wrapped(self, what: str, call: Callable[[], Any]) -> Any:
        """A wrapper call; what it raises on an answer it did not expect becomes ours."""
        try:
            return call()
        except NextcloudError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ET.ParseError) as exc:
            raise NextcloudRequestError(
                f"{what}: unexpected answer ({type(exc).__name__}): is the base URL a Nextcloud?",
                http_status=0,
            ) from exc

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


class _Http:
    """The one requests session: auth, CA bundle, timeout, no redirects, errors."""

    def __init__(
        self,
        *,
        origin: str,
        base_path: str,
        user: str,
        password: str,
        verify: bool | str,
        timeout: float,
    ) -> None:
        self.origin = origin
        self.base_path = base_path
        self.user = user
        self._session = requests.Session()
        # No proxy or netrc from the environment: traffic goes to the checked address only.
        self._session.trust_env = False
        self._session.auth = (user, password)
        # Required on every OCS call; harmless on WebDAV. The wrapper's own header cache
        # is shared between its OCS and WebDAV requesters and can drop it.
        self._session.headers["OCS-APIRequest"] = "true"
        self._password = password
        self._verify = verify
        self._timeout = timeout

    def url(self, path: str) -> str:
        return f"{self.origin}{self.base_path}{path}"

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        data: Any = None,
        stream: bool = False,
        anonymous: bool = False,
    ) -> requests.Response:
        """One request; with `stream` the body is read as the caller iterates over it;
        `anonymous` sends it without the account's credentials."""
        request = f"{method.upper()} {urlsplit(url).path}"
        try:
            return self._session.request(
                method.upper(),
                url,
                headers=dict(headers or {}),
                params=params,
                data=data,
                stream=stream,
                # A per-request auth replaces the session's; None would fall back to it.
                auth=_no_auth if anonymous else None,
                timeout=self._timeout,
                # Per call: a session-level verify loses to REQUESTS_CA_BUNDLE.
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise NextcloudConnectionError(
                f"{request}: TLS with {self.origin} failed: give the deployment's CA bundle "
                "as verify= (the file reverse_proxy_ca_export_path names, for an internal CA)"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise NextcloudConnectionError(
                f"{request}: {self.origin} did not answer within {self._timeout:g} s: "
                "check that Nextcloud is running, or raise the timeout"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise NextcloudConnectionError(
                f"{request}: cannot reach {self.origin} ({type(exc).__name__}): check the "
                "base URL and that Nextcloud is running"
            ) from exc

    def ocs_data(
        self,
        what: str,
        response: requests.Response,
        hints: Mapping[int, str],
        hidden: tuple[str, ...] = (),
    ) -> Any:
        """The data of an OCS answer, after its HTTP status and meta.statuscode."""
        # OCS API overview: v1 answers statuscode 100 with HTTP 200 (401 for 997); v2
        # answers 200 and an HTTP status following the code (nextcloud/server
        # lib/private/AppFramework/OCS/V1Response.php and V2Response.php).
        self._refuse_redirect(what, response)
        try:
            body = response.json()
        except ValueError:
            body = None
        ocs = body.get("ocs") if isinstance(body, dict) else None
        meta = ocs.get("meta") if isinstance(ocs, dict) else None
        if not isinstance(ocs, dict) or not isinstance(meta, dict):
            self._refuse_credentials(what, response.status_code, None)
            message = body.get("message") if isinstance(body, dict) else None
            hint = hints.get(response.status_code) or _http_hint(response.status_code)
            raise NextcloudRequestError(
                self._scrub(
                    f"{what}: HTTP {response.status_code} without an OCS answer"
                    + (f" ({message})" if message else "")
                    + f": {hint}",
                    hidden,
                ),
                http_status=response.status_code,
            )
        try:
            code = int(meta.get("statuscode", -1))
        except (TypeError, ValueError):
            code = -1
        if code in (100, 200) and response.status_code < 400:
            return ocs.get("data")
        self._refuse_credentials(what, response.status_code, code)
        message = str(meta.get("message") or "").strip()
        hint = hints.get(code) or _ocs_hint(code) or _http_hint(response.status_code)
        raise NextcloudRequestError(
            self._scrub(
                f"{what}: Nextcloud answered OCS status {code}"
                + (f" ({message})" if message else "")
                + f": {hint}",
                hidden,
            ),
            http_status=response.status_code,
            ocs_status=code,
        )

    def dav_answer(
        self, what: str, response: requests.Response, parse: Callable[[bytes], _Parsed]
    ) -> _Parsed:
        """A WebDAV answer's body read by `parse`; XML it cannot read is a clear error."""
        try:
            return parse(response.content)
        except (ET.ParseError, ValueError) as exc:
            raise NextcloudRequestError(
                f"{what}: unreadable WebDAV answer ({exc}): is the base URL a Nextcloud?",
                http_status=response.status_code,
            ) from exc

    def expect(
        self,
        what: str,
        response: requests.Response,
        statuses: tuple[int, ...],
        hints: Mapping[int, str] | None = None,
    ) -> None:
        """A WebDAV answer must have one of `statuses`; Sabre's message tells why not."""
        self._refuse_redirect(what, response)
        if response.status_code in statuses:
            return
        self._refuse_credentials(what, response.status_code, None)
        message = _sabre_message(response.content)
        hint = (hints or {}).get(response.status_code) or _http_hint(response.status_code)
        raise NextcloudRequestError(
            self._scrub(
                f"{what}: HTTP {response.status_code}"
                + (f" ({message})" if message else "")
                + f": {hint}",
                (),
            ),
            http_status=response.status_code,
        )

    def _refuse_redirect(self, what: str, response: requests.Response) -> None:
        if response.is_redirect:
            location = response.headers.get("Location", "?")
            raise NextcloudRequestError(
                f"{what}: {self.origin} redirects to {location}: use the final address as "
                "the base URL (redirects are not followed)",
                http_status=response.status_code,
            )

    def _refuse_credentials(self, what: str, http_status: int, ocs_status: int | None) -> None:
        if http_status == 401 or ocs_status == 997:
            raise NextcloudAuthError(
                f"{what}: Nextcloud refused the credentials of {self.user} (HTTP "
                f"{http_status}): check the user name and app password (Settings > "
                "Security > Devices & sessions), and that the account is enabled"
            )

    def _scrub(self, message: str, hidden: tuple[str, ...]) -> str:
        for secret in (self._password, *hidden):
            if secret:
                message = message.replace(secret, "***")
        return message


class _WrapperSession:
    """What nextcloud-api-wrapper asks of its session (url, user, request), over _Http.

    Its URLs are built from `url`, the origin only: a base path given to the wrapper
    would rewrite its API classes' paths process-wide, so _Http adds the path here.
    """

    def __init__(self, http: _Http, user: str) -> None:
        self._http = http
        self.url = http.origin
        self.user = user

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        data: Any = None,
    ) -> requests.Response:
        if url.startswith(self._http.origin):
            url = self._http.url(url[len(self._http.origin) :])
        return self._http.send(method, url, headers=headers, params=params, data=data)


USER_ENV = "EDUCLOUD_NEXTCLOUD_USER"
PASSWORD_ENV = "EDUCLOUD_NEXTCLOUD_PASSWORD"  # noqa: S105 (a variable name)
CA_ENV = "EDUCLOUD_NEXTCLOUD_CA"


def client_from_env(base_url: str) -> NextcloudClient:
    """A client for the admin account the environment names (never the command line)."""
    app_password = os.environ.get(PASSWORD_ENV)
    if not app_password:
        raise NextcloudError(
            f"a Nextcloud URL needs {PASSWORD_ENV} (an app password of {USER_ENV}, "
            "default admin) in the environment"
        )
    return NextcloudClient(
        base_url,
        os.environ.get(USER_ENV, "admin"),
        app_password,
        verify=os.environ.get(CA_ENV, True),
    )


def _check_target_host(host: str, port: int) -> None:
    """Every address `host` stands for must be one netpin allows (else refused)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        addresses = _resolve(host, port)
    else:
        addresses = [host]
    for address in addresses:
        try:
            check_target(address)
        except EducloudError as exc:
            raise NextcloudTargetError(f"Nextcloud at {host}: {exc}") from exc


def _resolve(host: str, port: int) -> list[str]:
    lab_name = host.lower().endswith(_LAB_SUFFIX)
    # A lab name resolves only through netpin.pinned_names: AI_NUMERICHOST makes an
    # unpinned one fail here instead of going to DNS.
    flags = socket.AI_NUMERICHOST if lab_name else 0
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP, flags=flags)
    except socket.gaierror as exc:
        if lab_name:
            raise NextcloudTargetError(
                f"{host} is a lab name and this process has not pinned it: run inside "
                f"educloud.netpin.pinned_names({{{host!r}: <address>}})"
            ) from exc
        raise NextcloudConnectionError(
            f"cannot resolve {host} ({exc.strerror}): check the Nextcloud base URL"
        ) from exc
    return sorted({str(info[4][0]) for info in infos})


def _segment(value: str) -> str:
    """One URL path segment (ids may hold spaces, '#', '?' or '/')."""
    return quote(value, safe="")


def _clean_path(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise NextcloudError(f"{path!r}: '.' and '..' are not allowed in a Nextcloud path")
    return "/".join(parts)


def _share_path(path: str) -> str:
    return "/" + _clean_path(path)


def _field(data: Any, key: str, what: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise NextcloudRequestError(f"{what}: the answer has no {key} list", http_status=200)
    return value


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _user(data: Any, what: str) -> User:
    if not isinstance(data, dict) or "id" not in data:
        raise NextcloudRequestError(f"{what}: the answer has no user", http_status=200)
    return User(
        id=str(data["id"]),
        display_name=str(data.get("displayname") or data.get("display-name") or data["id"]),
        email=str(data["email"]) if data.get("email") else None,
        enabled=_as_bool(data.get("enabled")),
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
        acl=_as_bool(data.get("acl")),
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


def _tag(item: Any) -> Tag:
    return Tag(
        id=int(item.id),
        name=str(item.display_name),
        user_visible=_as_bool(item.user_visible),
        user_assignable=_as_bool(item.user_assignable),
    )


_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:getlastmodified/><d:getetag/><d:getcontenttype/>"
    b"<d:getcontentlength/><oc:fileid/><oc:size/>"
    b"</d:prop></d:propfind>"
)


def _dav_entries(content: bytes, root_path: str) -> list[DavEntry]:
    """The entries of a d:multistatus, with paths relative to `root_path`."""
    entries = []
    for path, props in _multistatus(content, root_path):
        resource_type = props.get(f"{_DAV}resourcetype")
        is_dir = resource_type is not None and resource_type.find(f"{_DAV}collection") is not None
        size = _prop_text(props, f"{_OC}size") or _prop_text(props, f"{_DAV}getcontentlength")
        modified = _prop_text(props, f"{_DAV}getlastmodified")
        file_id = _prop_text(props, f"{_OC}fileid")
        entries.append(
            DavEntry(
                path=path,
                is_dir=is_dir,
                file_id=int(file_id) if file_id else None,
                size=int(size) if size else None,
                etag=(_prop_text(props, f"{_DAV}getetag") or "").strip('"') or None,
                content_type=_prop_text(props, f"{_DAV}getcontenttype"),
                last_modified=parsedate_to_datetime(modified) if modified else None,
            )
        )
    return entries


_OWNER_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<oc:owner-id/><oc:fileid/>"
    b"</d:prop></d:propfind>"
)


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook that adds nothing: the request goes out without credentials."""
    return request


def _public_token(token: str) -> str:
    if not token or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
        raise NextcloudError(f"{token!r} is not a public link token (letters, digits, -, _)")
    return token


_COLLECTIONS_PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:displayname/><oc:owner-principal/>"
    b"</d:prop></d:propfind>"
)


def _dav_collections(content: bytes, home: str) -> list[DavCollection]:
    """The collections directly in a DAV home (not the home itself)."""
    found = []
    for name, props in _multistatus(content, unquote(home)):
        if not name:
            continue
        resource_type = props.get(f"{_DAV}resourcetype")
        owner = props.get(f"{_OC}owner-principal")
        # Nextcloud writes the owner as text; other servers as a d:href child.
        owner_href = None if owner is None else (owner.findtext(f"{_DAV}href") or owner.text)
        found.append(
            DavCollection(
                name=name,
                display_name=_prop_text(props, f"{_DAV}displayname") or name,
                resource_types=frozenset(
                    child.tag for child in (resource_type if resource_type is not None else [])
                ),
                owner_principal=(owner_href or "").strip() or None,
            )
        )
    return found


def _multistatus(content: bytes, root_path: str) -> Iterator[tuple[str, dict[str, ET.Element]]]:
    """Each d:response of a d:multistatus: its path relative to `root_path` and its
    properties found (status 200). An href outside `root_path` is a ValueError."""
    root = ET.fromstring(content)  # noqa: S314 - expat >= 2.4 refuses entity expansion bombs
    prefix = root_path.rstrip("/")
    for response in root.iter(f"{_DAV}response"):
        href = unquote(urlsplit(response.findtext(f"{_DAV}href") or "").path)
        if not href.startswith(prefix):
            raise ValueError(f"href {href} is outside {root_path}")
        props: dict[str, ET.Element] = {}
        for propstat in response.iter(f"{_DAV}propstat"):
            if (propstat.findtext(f"{_DAV}status") or "").split()[1:2] != ["200"]:
                continue
            for prop in propstat.iter(f"{_DAV}prop"):
                props.update((child.tag, child) for child in prop)
        yield href[len(prefix) :].strip("/"), props


def _prop_text(props: Mapping[str, ET.Element], name: str) -> str | None:
    element = props.get(name)
    return element.text.strip() if element is not None and element.text else None


def _sabre_message(content: bytes) -> str:
    """The <s:message> of a Sabre error body, if there is one."""
    try:
        root = ET.fromstring(content)  # noqa: S314 - expat >= 2.4 refuses entity expansion bombs
    except ET.ParseError:
        return ""
    return (root.findtext("{http://sabredav.org/ns}message") or "").strip()


def _ocs_hint(code: int) -> str | None:
    return {
        403: "the account lacks the rights for this (an administrator is needed)",
        404: "it does not exist",
        997: "the credentials were refused",
        998: "this Nextcloud does not offer the API (is the app enabled?)",
    }.get(code)


def _http_hint(status: int) -> str:
    if status == 412:
        return "a proxy may drop the OCS-APIRequest header: check the reverse proxy"
    if status == 503:
        return "Nextcloud is in maintenance mode or overloaded: retry later"
    if status >= 500:
        return "server error: see nextcloud.log on the server"
    if status == 404:
        return "not found: check the base URL (and that the app is enabled)"
    if status == 403:
        return "forbidden for this account"
    return "see nextcloud.log on the server"
