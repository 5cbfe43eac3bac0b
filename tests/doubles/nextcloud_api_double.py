"""Nextcloud's HTTP APIs as the client sees them: a double, not Nextcloud.

A real HTTP server on 127.0.0.1 (http.server in a thread, a free port) with in-memory
state, for `educloud.clients.nextcloud`'s unit tests. It answers what Nextcloud documents,
and where the documentation is silent what Nextcloud's code does (file named per item):

- OCS v1 (/ocs/v1.php) and v2 (/ocs/v2.php): an {ocs: {meta, data}} envelope; v1 says
  statuscode 100 and HTTP 200 for everything except 997 (HTTP 401), v2 says 200 and its
  HTTP status follows the code (server lib/private/AppFramework/OCS/V1Response.php,
  V2Response.php). JSON for format=json or Accept: application/json, XML otherwise.
  Basic auth first (997 "Current user is not logged in"), then the OCS-APIRequest: true
  header (without it: HTTP 412 {"message": "CSRF check failed"}, SecurityMiddleware.php).
- Provisioning (documentation admin_manual/configuration_user/instruction_set_for_users.rst
  and instruction_set_for_groups.rst): users, groups, membership, with their status codes.
- Shares (developer_manual/client_apis/OCS/ocs-share-api.rst; the fields of
  ShareAPIController::formatShare): user, group and public link shares of the files below.
- Group folders (groupfolders README "REST API", index.php/apps/groupfolders/folders;
  FolderController: a v1 envelope, folders keyed by id, PHP's empty array `[]`).
- WebDAV files (developer_manual/client_apis/WebDAV/basic.rst): PUT (201 new, 204
  overwritten, OC-FileId), GET, MKCOL, DELETE, PROPFIND (Depth 0/1, d:multistatus,
  oc:fileid); errors as Sabre's <d:error> with <s:message>.
- System tags (server apps/dav/lib/SystemTag): PROPFIND the tags, POST a JSON tag
  (201 + Content-Location), PUT systemtags-relations/files/<file id>/<tag id> (201, 409
  when already assigned, 412 for an unknown tag).
- Calendars and contacts (developer_manual/client_apis/WebDAV; server apps/dav): PROPFIND
  Depth 1 on calendars/<uid>/ and addressbooks/users/<uid>/ lists the collections with
  their d:resourcetype (cal:calendar, card:addressbook; also the scheduling inbox/outbox,
  the trash bin and the generated system address book, as Nextcloud lists them); GET
  <collection>?export answers the whole collection (sabre's ICSExportPlugin and
  VCFExportPlugin), a GET without ?export is refused (501).
- The public share page (/s/<token>, /index.php/s/<token>; ShareController): 200, 303 to
  the password prompt for a protected link, 404 once the share is gone.
- A public link's WebDAV (/public.php/dav/files/<token>, Nextcloud >= 29; developer manual
  client_apis/WebDAV/basic.rst "Public shares"): PROPFIND of the shared node without an
  account, or with "anonymous" and the link's password (401 otherwise), 404 for an unknown
  token; oc:owner-id is the owner's uid (apps/dav FilesPlugin).

Not modelled: sessions and cookies, brute-force throttling, subadmins, quota enforcement,
chunked upload, locks, versions, trash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

DAV_NS = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
OC_NS = "http://owncloud.org/ns"
NC_NS = "http://nextcloud.org/ns"
SABRE_NS = "http://sabredav.org/ns"
for _prefix, _uri in (
    ("d", DAV_NS), ("oc", OC_NS), ("nc", NC_NS), ("s", SABRE_NS), ("cal", CALDAV_NS),
    ("card", CARDDAV_NS),
):  # fmt: skip
    ET.register_namespace(_prefix, _uri)

INSTANCE_ID = "ocdouble0"
PERMISSION_READ, PERMISSION_UPDATE, PERMISSION_CREATE, PERMISSION_DELETE = 1, 2, 4, 8
PERMISSION_ALL = 31
SHARE_USER, SHARE_GROUP, SHARE_LINK = 0, 1, 3


@dataclass
class Account:
    password: str
    display_name: str
    email: str | None = None
    enabled: bool = True


@dataclass
class Node:
    file_id: int
    is_dir: bool
    content: bytes = b""
    mtime: float = field(default_factory=time.time)

    @property
    def etag(self) -> str:
        seed = f"{self.file_id}:{self.mtime}:{len(self.content)}".encode()
        return hashlib.md5(seed, usedforsecurity=False).hexdigest()


@dataclass
class DavCollectionRecord:
    """A calendar (its events as one iCalendar document) or an address book (vCards)."""

    display_name: str
    content: bytes


@dataclass
class GroupFolderRecord:
    id: int
    mount_point: str
    groups: dict[str, int] = field(default_factory=dict)
    quota: int = -3
    acl: bool = False


@dataclass
class ShareRecord:
    id: int
    share_type: int
    owner: str
    path: str
    file_id: int
    is_dir: bool
    permissions: int
    share_with: str | None
    token: str | None
    stime: int
    password_hash: str | None = None
    initiator: str | None = None
    """Who made the share, when not the file's owner (a reshare: set by a test)."""

    @property
    def sharer(self) -> str:
        return self.initiator or self.owner


@dataclass
class TagRecord:
    id: int
    name: str
    user_visible: bool = True
    user_assignable: bool = True


@dataclass(frozen=True)
class SeenRequest:
    """One request as the double received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class OcsError(Exception):
    """An OCSException: its code becomes the OCS status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DavError(Exception):
    """A Sabre DAV exception: HTTP status, exception class name, message."""

    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.message = message


class NextcloudApiDouble:
    """In-memory Nextcloud APIs behind a real HTTP server on 127.0.0.1: a double.

    Use as a context manager (or start()/close()); `url` is the base URL to give the
    client, `admin_user`/`admin_password` the credentials it accepts.
    """

    def __init__(self, admin_user: str = "admin", admin_password: str | None = None) -> None:
        self.admin_user = admin_user
        self.admin_password = admin_password or f"double-{secrets.token_urlsafe(12)}"
        self.accounts: dict[str, Account] = {
            admin_user: Account(self.admin_password, admin_user),
        }
        self.groups: dict[str, set[str]] = {"admin": {admin_user}}
        self._file_ids = itertools.count(100)
        self.files: dict[str, dict[str, Node]] = {}
        self._home(admin_user)
        self.group_folders: dict[int, GroupFolderRecord] = {}
        self.shares: dict[int, ShareRecord] = {}
        self.tags: dict[int, TagRecord] = {}
        self.tag_assignments: dict[int, set[int]] = {}
        self.calendars: dict[str, dict[str, DavCollectionRecord]] = {}
        self.address_books: dict[str, dict[str, DavCollectionRecord]] = {}
        self.app_passwords: dict[str, set[str]] = {}
        self.seen: list[SeenRequest] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.double = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> NextcloudApiDouble:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> NextcloudApiDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- seeding state without HTTP (tests) ---------------------------------------------

    def put_file(self, user: str, path: str, content: bytes) -> None:
        """Store a file in `user`'s home, creating its folders (as an upload would have)."""
        home = self._home(user)
        parts = _clean(path).split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            home.setdefault(folder, Node(next(self._file_ids), is_dir=True))
        home["/".join(parts)] = Node(next(self._file_ids), is_dir=False, content=content)

    def add_calendar(
        self, user: str, name: str, ics: bytes, display_name: str | None = None
    ) -> None:
        self.calendars.setdefault(user, {})[name] = DavCollectionRecord(display_name or name, ics)

    def add_address_book(
        self, user: str, name: str, vcf: bytes, display_name: str | None = None
    ) -> None:
        self.address_books.setdefault(user, {})[name] = DavCollectionRecord(
            display_name or name, vcf
        )

    # -- the request pipeline ---------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            self.seen.append(SeenRequest(method, target, headers))
            url = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            user = self._authenticate(headers)
            path = url.path
            for prefix, version in (("/ocs/v1.php", 1), ("/ocs/v2.php", 2)):
                if path.startswith(prefix + "/"):
                    return self._ocs(
                        version, path[len(prefix) :], method, query, headers, body, user
                    )
            for prefix in ("/index.php/apps/groupfolders/", "/apps/groupfolders/"):
                # An OCSController on a plain route answers the v1 envelope.
                if path.startswith(prefix):
                    route = "/apps/groupfolders/" + path[len(prefix) :]
                    return self._ocs(1, route, method, query, headers, body, user)
            if path.startswith("/remote.php/dav/"):
                route = path[len("/remote.php/dav/") :]
                return self._dav(method, route, headers, body, user, query)
            prefix = "/public.php/dav/files/"
            if path.startswith(prefix) and method == "PROPFIND":
                return self._public_dav(path[len(prefix) :].strip("/"), headers, body)
            for prefix in ("/index.php/s/", "/s/"):
                # The public share page (ShareController::showShare): 404 once it is gone.
                if path.startswith(prefix) and method == "GET":
                    return self._public_link(path[len(prefix) :].strip("/"))
            return Reply(404, {"Content-Type": "text/plain"}, b"not a Nextcloud API path")

    def _public_link(self, token: str) -> Reply:
        share = next((s for s in self.shares.values() if token and s.token == token), None)
        if share is None:
            return Reply(404, {"Content-Type": "text/html; charset=utf-8"}, b"Share not found")
        if share.password_hash:
            location = f"/index.php/s/{token}/authenticate/showShare"
            return Reply(303, {"Location": location})
        page = f"<html><body>{share.path.rsplit('/', 1)[-1]}</body></html>".encode()
        return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, page)

    def _public_dav(self, token: str, headers: dict[str, str], body: bytes) -> Reply:
        """PROPFIND Depth 0 of a public link's root (apps/dav PublicAuth, FilesPlugin)."""
        share = next((s for s in self.shares.values() if token and s.token == token), None)
        if share is None:
            return _dav_error(DavError(404, "NotFound", "Share not found"))
        if share.password_hash:
            user, password = _basic_credentials(headers) or ("", "")
            if user != "anonymous" or _link_password_hash(password) != share.password_hash:
                return _unauthenticated("Cannot authenticate")
        home = self._home(share.owner)
        node = home.get(_clean(share.path))
        if node is None:
            return _dav_error(DavError(404, "NotFound", "Share not found"))
        props = self._file_props(home, _clean(share.path), node)
        props[f"{{{OC_NS}}}owner-id"] = share.owner
        href = f"/public.php/dav/files/{token}" + ("/" if node.is_dir else "")
        return _multistatus([(href, props, _requested_props(body))])

    def _authenticate(self, headers: dict[str, str]) -> str | None:
        credentials = _basic_credentials(headers)
        if credentials is None:
            return None
        user, password = credentials
        account = self.accounts.get(user)
        if account is None or not account.enabled:
            return None
        # An app password (occ user:auth-tokens:add) is accepted like the login password.
        accepted = [account.password, *self.app_passwords.get(user, ())]
        return user if any(secrets.compare_digest(p, password) for p in accepted) else None

    def _home(self, user: str) -> dict[str, Node]:
        return self.files.setdefault(user, {"": Node(next(self._file_ids), is_dir=True)})

    # -- OCS ----------------------------------------------------------------------------

    def _ocs(
        self,
        version: int,
        route: str,
        method: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        user: str | None,
    ) -> Reply:
        params: dict[str, Any] = dict(query)
        if body and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                params[key] = values if key.endswith("[]") else values[-1]
        fmt = params.get("format") or (
            "json" if "application/json" in headers.get("accept", "") else "xml"
        )
        if user is None:
            return _ocs_reply(version, fmt, 997, "Current user is not logged in", [])
        if headers.get("ocs-apirequest") != "true":
            return Reply(
                412,
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps({"message": "CSRF check failed"}).encode(),
            )
        segments = [unquote(s) for s in route.strip("/").split("/")]
        try:
            data = self._ocs_route(method, segments, params, user)
        except OcsError as error:
            return _ocs_reply(version, fmt, error.code, error.message, [])
        return _ocs_reply(version, fmt, 200, "", data)

    def _ocs_route(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        if seg[:2] == ["cloud", "users"]:
            return self._users(method, seg[2:], params, user)
        if seg[:2] == ["cloud", "groups"]:
            self._require_admin(user)
            return self._groups(method, seg[2:], params)
        if seg[:5] == ["apps", "files_sharing", "api", "v1", "shares"]:
            return self._shares(method, seg[5:], params, user)
        if seg[:3] == ["apps", "groupfolders", "folders"]:
            self._require_admin(user)
            return self._group_folders(method, seg[3:], params)
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _require_admin(self, user: str) -> None:
        if user not in self.groups["admin"]:
            raise OcsError(403, "Logged in user must be an admin")

    def _users(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        if not (method == "GET" and len(seg) == 1 and seg[0] == user):
            self._require_admin(user)
        if not seg and method == "GET":
            return {"users": _page(self._search(self.accounts, params), params)}
        if not seg and method == "POST":
            return self._add_user(params)
        target, rest = seg[0], seg[1:]
        account = self.accounts.get(target)
        if account is None:
            if method == "GET" and not rest:
                raise OcsError(404, "User does not exist")
            # The documented codes: 103 for a membership change, 101 otherwise.
            membership = rest == ["groups"] and method != "GET"
            raise OcsError(103 if membership else 101, "User does not exist")
        if method == "GET" and not rest:
            return self._user_data(target, account)
        if method == "PUT" and not rest:
            return self._edit_user(account, params)
        if method == "PUT" and rest in (["enable"], ["disable"]):
            account.enabled = rest == ["enable"]
            return []
        if method == "DELETE" and not rest:
            del self.accounts[target]
            for members in self.groups.values():
                members.discard(target)
            return []
        if rest == ["groups"] and method == "GET":
            return {"groups": sorted(g for g, m in self.groups.items() if target in m)}
        if rest == ["groups"] and method in ("POST", "DELETE"):
            group_id = params.get("groupid", "")
            if not group_id:
                raise OcsError(101, "No group specified")
            if group_id not in self.groups:
                raise OcsError(102, "Group does not exist")
            if method == "POST":
                self.groups[group_id].add(target)
            else:
                self.groups[group_id].discard(target)
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _add_user(self, params: dict[str, Any]) -> Any:
        user_id = params.get("userid", "")
        password = params.get("password", "")
        if not user_id or "/" in user_id:
            raise OcsError(101, "Invalid user id")
        if user_id in self.accounts:
            raise OcsError(102, "User already exists")
        groups = params.get("groups[]", [])
        for group in groups:
            if group not in self.groups:
                raise OcsError(104, f"Group {group} does not exist")
        if not password and not params.get("email"):
            raise OcsError(108, "To send a password link to the user an email address is required.")
        self.accounts[user_id] = Account(
            password, params.get("displayName") or user_id, params.get("email") or None
        )
        for group in groups:
            self.groups[group].add(user_id)
        self._home(user_id)
        return {"id": user_id}

    def _edit_user(self, account: Account, params: dict[str, Any]) -> Any:
        key, value = params.get("key"), params.get("value", "")
        if key in ("displayname", "display"):
            account.display_name = value
        elif key == "email":
            account.email = value or None
        elif key == "password":
            account.password = value
        else:
            raise OcsError(102, "Invalid input data")
        return []

    def _user_data(self, user_id: str, account: Account) -> dict[str, Any]:
        return {
            "enabled": account.enabled,
            "id": user_id,
            "displayname": account.display_name,
            "display-name": account.display_name,
            "email": account.email,
            "groups": sorted(g for g, m in self.groups.items() if user_id in m),
            # UsersController::fillStorageInfo: `used` is the size of the user's files.
            "quota": {"quota": "none", "used": self.storage_used(user_id)},
        }

    def storage_used(self, user_id: str) -> int:
        """Bytes of the user's files, as Nextcloud reports them in `quota.used`."""
        return sum(len(node.content) for node in self.files.get(user_id, {}).values())

    def _groups(self, method: str, seg: list[str], params: dict[str, Any]) -> Any:
        if not seg and method == "GET":
            return {"groups": _page(self._search(self.groups, params), params)}
        if not seg and method == "POST":
            group_id = params.get("groupid", "")
            if not group_id:
                raise OcsError(101, "Invalid group name")
            if group_id in self.groups:
                raise OcsError(102, "group exists")
            self.groups[group_id] = set()
            return []
        group_id = "/".join(seg)
        if method == "GET":
            if group_id not in self.groups:
                raise OcsError(404, "The requested group could not be found")
            return {"users": sorted(self.groups[group_id])}
        if method == "DELETE":
            if group_id not in self.groups:
                raise OcsError(101, "Group does not exist")
            if group_id == "admin":
                raise OcsError(102, "Cannot delete admin group")
            del self.groups[group_id]
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    @staticmethod
    def _search(names: dict[str, Any], params: dict[str, Any]) -> list[str]:
        search = str(params.get("search") or "").lower()
        return sorted(name for name in names if search in name.lower())

    def _shares(self, method: str, seg: list[str], params: dict[str, Any], user: str) -> Any:
        if not seg and method == "GET":
            # Shares the user made; with reshares=true (and no path), also those others
            # made of the user's files (the share manager's getSharesBy with $reshares).
            reshares = params.get("reshares") == "true" and not params.get("path")
            mine = [
                s
                for s in self.shares.values()
                if s.sharer == user or (reshares and s.owner == user)
            ]
            if params.get("path"):
                path = _clean(params["path"])
                if path not in self._home(user):
                    raise OcsError(404, "Wrong path, file/folder doesn't exist")
                mine = [s for s in mine if s.path == path]
            return [self._share_data(s) for s in mine]
        if not seg and method == "POST":
            return self._share_data(self._create_share(params, user))
        share = self.shares.get(int(seg[0])) if seg[0].isdigit() else None
        if share is None or user not in (share.owner, share.sharer):
            raise OcsError(404, "Wrong share ID, share doesn't exist")
        if method == "GET":
            return [self._share_data(share)]
        if method == "DELETE":
            del self.shares[share.id]
            return []
        raise OcsError(998, "Invalid query, please check the syntax.")

    def _create_share(self, params: dict[str, Any], user: str) -> ShareRecord:
        if not params.get("path"):
            raise OcsError(404, "Please specify a file or folder path")
        path = _clean(params["path"])
        node = self._home(user).get(path)
        if node is None:
            raise OcsError(404, "Wrong path, file/folder doesn't exist")
        share_type = int(params.get("shareType", -1))
        permissions = int(params.get("permissions", PERMISSION_ALL))
        if permissions < 0 or permissions > PERMISSION_ALL:
            raise OcsError(404, "invalid permissions")
        permissions |= PERMISSION_READ
        if not node.is_dir:
            permissions &= ~(PERMISSION_DELETE | PERMISSION_CREATE)
        share_with = params.get("shareWith")
        token = password_hash = None
        if share_type == SHARE_USER:
            if share_with is None or share_with not in self.accounts:
                raise OcsError(404, "Please specify a valid user")
        elif share_type == SHARE_GROUP:
            if share_with is None or share_with not in self.groups:
                raise OcsError(404, "Please specify a valid group")
        elif share_type == SHARE_LINK:
            upload = params.get("publicUpload") == "true"
            if upload and not node.is_dir:
                raise OcsError(404, "Public upload is only possible for publicly shared folders")
            permissions = PERMISSION_ALL & ~16 if upload else PERMISSION_READ
            share_with, token = None, secrets.token_urlsafe(11)
            if params.get("password"):
                password_hash = _link_password_hash(params["password"])
        else:
            raise OcsError(400, "Unknown share type")
        share = ShareRecord(
            next(self._ids), share_type, user, path, node.file_id, node.is_dir,
            permissions, share_with, token, int(time.time()), password_hash,
        )  # fmt: skip
        self.shares[share.id] = share
        return share

    def _share_data(self, share: ShareRecord) -> dict[str, Any]:
        owner = self.accounts.get(share.owner)
        data: dict[str, Any] = {
            "id": str(share.id),
            "share_type": share.share_type,
            "uid_owner": share.sharer,
            "displayname_owner": owner.display_name if owner else share.owner,
            "permissions": share.permissions,
            "stime": share.stime,
            "parent": None,
            "expiration": None,
            "token": share.token,
            "uid_file_owner": share.owner,
            "path": "/" + share.path,
            "item_type": "folder" if share.is_dir else "file",
            "item_source": share.file_id,
            "file_source": share.file_id,
            "file_target": "/" + share.path.rsplit("/", 1)[-1],
            "share_with": share.share_with,
            "share_with_displayname": share.share_with,
            "mail_send": 0,
        }
        if share.share_type == SHARE_LINK:
            # formatShare: a link share's share_with is its (hashed) password.
            data["share_with"] = data["password"] = share.password_hash
            data["share_with_displayname"] = "(Shared link)"
            data["url"] = f"{self.url}/index.php/s/{share.token}"
        return data

    def _group_folders(self, method: str, seg: list[str], params: dict[str, Any]) -> Any:
        if not seg and method == "GET":
            return {str(f.id): self._folder_data(f) for f in self.group_folders.values()}
        if not seg and method == "POST":
            mount_point = str(params.get("mountpoint", "")).strip()
            if any(f.mount_point == mount_point for f in self.group_folders.values()):
                raise OcsError(400, "Mount point already exists")
            folder = GroupFolderRecord(next(self._ids), mount_point)
            self.group_folders[folder.id] = folder
            return self._folder_data(folder)
        folder_or_none = self.group_folders.get(int(seg[0])) if seg[0].isdigit() else None
        if folder_or_none is None:
            raise OcsError(404, "Groupfolder not found")
        folder, rest = folder_or_none, seg[1:]
        if method == "GET" and not rest:
            return self._folder_data(folder)
        if method == "DELETE" and not rest:
            del self.group_folders[folder.id]
            return {"success": True}
        if method == "POST" and rest == ["groups"]:
            folder.groups.setdefault(str(params.get("group", "")), PERMISSION_ALL)
        elif method == "POST" and rest[:1] == ["groups"] and len(rest) > 1:
            folder.groups["/".join(rest[1:])] = int(params.get("permissions", 0))
        elif method == "DELETE" and rest[:1] == ["groups"] and len(rest) > 1:
            folder.groups.pop("/".join(rest[1:]), None)
        elif method == "POST" and rest == ["quota"]:
            folder.quota = int(params.get("quota", -3))
        else:
            raise OcsError(998, "Invalid query, please check the syntax.")
        return {"success": True, "folder": self._folder_data(folder)}

    def _folder_data(self, folder: GroupFolderRecord) -> dict[str, Any]:
        return {
            "id": folder.id,
            "mount_point": folder.mount_point,
            "quota": folder.quota,
            "acl": folder.acl,
            "size": 0,
            "groups": dict(folder.groups),
            "group_details": {
                gid: {"displayName": gid, "permissions": p, "type": "group"}
                for gid, p in folder.groups.items()
            },
            "manage": [],
        }

    # -- WebDAV -------------------------------------------------------------------------

    def _dav(
        self,
        method: str,
        route: str,
        headers: dict[str, str],
        body: bytes,
        user: str | None,
        query: dict[str, str] | None = None,
    ) -> Reply:
        if user is None:
            return _unauthenticated("No public access to this resource.")
        segments = [unquote(s) for s in route.split("/")]
        try:
            if segments[0] == "files" and len(segments) > 1:
                return self._files(method, segments[1], segments[2:], headers, body, user)
            if segments[0] == "systemtags":
                return self._systemtags(method, segments[1:], headers, body)
            if segments[:2] == ["systemtags-relations", "files"] and len(segments) > 2:
                return self._relations(method, segments[2:], body)
            if segments[0] == "calendars" and len(segments) > 1:
                return self._dav_home(
                    method, "calendars", segments[1], segments[2:], body, user, query or {}
                )
            if segments[:2] == ["addressbooks", "users"] and len(segments) > 2:
                return self._dav_home(
                    method, "addressbooks", segments[2], segments[3:], body, user, query or {}
                )
            raise DavError(404, "NotFound", "File not found: " + route)
        except DavError as error:
            return _dav_error(error)

    def _files(
        self,
        method: str,
        owner: str,
        segments: list[str],
        headers: dict[str, str],
        body: bytes,
        user: str,
    ) -> Reply:
        if owner != user:
            raise DavError(404, "NotFound", f"Principal with name {owner} not found")
        home = self._home(user)
        path = _clean("/".join(segments))
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        node = home.get(path)
        if method == "PUT":
            if parent not in home or not home[parent].is_dir:
                raise DavError(
                    409, "Conflict", "Files cannot be created in non-existent collections"
                )
            if node is not None and node.is_dir:
                raise DavError(409, "Conflict", "PUT is not allowed on non-files.")
            created = node is None
            node = node or Node(next(self._file_ids), is_dir=False)
            node.content, node.mtime = body, time.time()
            home[path] = node
            return Reply(
                201 if created else 204,
                {
                    "OC-FileId": f"{node.file_id:08d}{INSTANCE_ID}",
                    "OC-ETag": f'"{node.etag}"',
                    "ETag": f'"{node.etag}"',
                },
            )
        if method == "MKCOL":
            if node is not None:
                raise DavError(
                    405, "MethodNotAllowed", "The resource you tried to create already exists"
                )
            if parent not in home:
                raise DavError(409, "Conflict", "Parent node does not exist")
            home[path] = Node(next(self._file_ids), is_dir=True)
            return Reply(201, {"OC-FileId": f"{home[path].file_id:08d}{INSTANCE_ID}"})
        if node is None:
            raise DavError(404, "NotFound", f"File with name {path} could not be located")
        if method == "GET":
            if node.is_dir:
                raise DavError(501, "NotImplemented", "GET on a folder is not modelled")
            return Reply(
                200,
                {"Content-Type": "application/octet-stream", "ETag": f'"{node.etag}"'},
                node.content,
            )
        if method == "DELETE":
            if not path:
                raise DavError(403, "Forbidden", "Permission denied to delete home folder")
            for key in [k for k in home if k == path or k.startswith(path + "/")]:
                del home[key]
            return Reply(204, {})
        if method == "PROPFIND":
            depth = headers.get("depth", "1")
            entries = [(path, node)]
            if node.is_dir and depth != "0":
                entries += sorted(
                    (k, n) for k, n in home.items() if k and _parent(k) == path and k != path
                )
            wanted = _requested_props(body)
            responses = [
                (self._file_href(user, k, n), self._file_props(home, k, n), wanted)
                for k, n in entries
            ]
            return _multistatus(responses)
        raise DavError(501, "NotImplemented", f"{method} is not modelled")

    @staticmethod
    def _file_href(user: str, path: str, node: Node) -> str:
        href = f"/remote.php/dav/files/{quote(user)}/{quote(path)}"
        return href + "/" if node.is_dir and path else href

    def _file_props(self, home: dict[str, Node], path: str, node: Node) -> dict[str, Any]:
        size = (
            sum(len(n.content) for k, n in home.items() if k.startswith(path + "/") or not path)
            if node.is_dir
            else len(node.content)
        )
        props: dict[str, Any] = {
            f"{{{DAV_NS}}}getlastmodified": formatdate(node.mtime, usegmt=True),
            f"{{{DAV_NS}}}getetag": f'"{node.etag}"',
            f"{{{DAV_NS}}}resourcetype": _collection() if node.is_dir else None,
            f"{{{OC_NS}}}fileid": str(node.file_id),
            f"{{{OC_NS}}}id": f"{node.file_id:08d}{INSTANCE_ID}",
            f"{{{OC_NS}}}size": str(size),
            f"{{{OC_NS}}}permissions": "RGDNVCK" if node.is_dir else "RGDNVW",
        }
        if not node.is_dir:
            props[f"{{{DAV_NS}}}getcontentlength"] = str(len(node.content))
            props[f"{{{DAV_NS}}}getcontenttype"] = "application/octet-stream"
        return props

    def _dav_home(
        self,
        method: str,
        kind: str,
        owner: str,
        segments: list[str],
        body: bytes,
        user: str,
        query: dict[str, str],
    ) -> Reply:
        """calendars/<uid>/ or addressbooks/users/<uid>/: list, or export one collection."""
        if owner != user:
            raise DavError(404, "NotFound", f"Principal with name {owner} not found")
        calendars = kind == "calendars"
        records = (self.calendars if calendars else self.address_books).get(user, {})
        home = (
            f"/remote.php/dav/calendars/{quote(user)}/"
            if calendars
            else f"/remote.php/dav/addressbooks/users/{quote(user)}/"
        )
        name = _clean("/".join(segments))
        if method == "PROPFIND" and not name:
            wanted = _requested_props(body)
            responses = [(home, {f"{{{DAV_NS}}}resourcetype": _collection()}, wanted)]
            kind_tag = f"{{{CALDAV_NS}}}calendar" if calendars else f"{{{CARDDAV_NS}}}addressbook"
            collections = [(n, r.display_name, kind_tag) for n, r in sorted(records.items())]
            # What Nextcloud also lists in these homes (not the user's own data).
            if calendars:
                collections += [
                    ("inbox", "inbox", f"{{{CALDAV_NS}}}schedule-inbox"),
                    ("outbox", "outbox", f"{{{CALDAV_NS}}}schedule-outbox"),
                    ("trashbin", "trashbin", f"{{{NC_NS}}}trash-bin"),
                ]
            else:
                collections.append(
                    ("z-server-generated--system", "Comptes", f"{{{CARDDAV_NS}}}addressbook")
                )
            for collection_name, display_name, tag in collections:
                resource_type = _collection()
                ET.SubElement(resource_type, tag)
                props: dict[str, Any] = {
                    f"{{{DAV_NS}}}resourcetype": resource_type,
                    f"{{{DAV_NS}}}displayname": display_name,
                    f"{{{OC_NS}}}owner-principal": f"principals/users/{user}",
                }
                responses.append((f"{home}{quote(collection_name)}/", props, wanted))
            return _multistatus(responses)
        record = records.get(name)
        if record is None:
            raise DavError(404, "NotFound", f"Node with name '{name}' could not be found")
        if method == "GET":
            if "export" not in query:
                raise DavError(501, "NotImplemented", "GET is only implemented on File objects")
            content_type = "text/calendar" if calendars else "text/vcard"
            return Reply(200, {"Content-Type": f"{content_type}; charset=utf-8"}, record.content)
        raise DavError(501, "NotImplemented", f"{method} is not modelled")

    def _node_by_id(self, file_id: int) -> Node | None:
        for home in self.files.values():
            for node in home.values():
                if node.file_id == file_id:
                    return node
        return None

    def _systemtags(
        self, method: str, segments: list[str], headers: dict[str, str], body: bytes
    ) -> Reply:
        segments = [s for s in segments if s]
        if method == "POST" and not segments:
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                raise DavError(415, "UnsupportedMediaType", "")
            data = json.loads(body or b"{}")
            if "name" not in data:
                raise DavError(400, "BadRequest", 'Missing "name" attribute')
            if any(t.name == data["name"] for t in self.tags.values()):
                raise DavError(409, "Conflict", "Tag already exists")
            tag = TagRecord(
                next(self._ids),
                str(data["name"]),
                bool(data.get("userVisible", True)),
                bool(data.get("userAssignable", True)),
            )
            self.tags[tag.id] = tag
            return Reply(201, {"Content-Location": f"/remote.php/dav/systemtags/{tag.id}"})
        if method == "PROPFIND":
            wanted = _requested_props(body)
            if segments:
                tag_or_none = self.tags.get(int(segments[0])) if segments[0].isdigit() else None
                if tag_or_none is None:
                    raise DavError(404, "NotFound", f"Tag with id {segments[0]} not found")
                return _multistatus([_tag_response(tag_or_none, wanted)])
            return _multistatus(self._tag_listing("/remote.php/dav/systemtags/", self.tags, wanted))
        raise DavError(501, "NotImplemented", f"{method} is not modelled")

    def _tag_listing(
        self, href: str, tags: dict[int, TagRecord], wanted: list[str] | None
    ) -> list[tuple[str, dict[str, Any], list[str] | None]]:
        root = (href, {f"{{{DAV_NS}}}resourcetype": _collection()}, wanted)
        return [root] + [_tag_response(t, wanted) for t in tags.values()]

    def _relations(self, method: str, segments: list[str], body: bytes) -> Reply:
        file_id = int(segments[0]) if segments[0].isdigit() else -1
        if self._node_by_id(file_id) is None:
            raise DavError(404, "NotFound", f"File with id {segments[0]} not found")
        assigned = self.tag_assignments.setdefault(file_id, set())
        tag_part = segments[1] if len(segments) > 1 and segments[1] else None
        if method == "PROPFIND" and tag_part is None:
            tags = {t: self.tags[t] for t in sorted(assigned) if t in self.tags}
            href = f"/remote.php/dav/systemtags-relations/files/{file_id}/"
            return _multistatus(self._tag_listing(href, tags, _requested_props(body)))
        tag_id = int(tag_part) if tag_part and tag_part.isdigit() else -1
        if method == "PUT":
            if tag_id in assigned:
                raise DavError(409, "Conflict", "PUT is not allowed on non-files.")
            if tag_id not in self.tags:
                raise DavError(
                    412,
                    "PreconditionFailed",
                    f"Tag with id {tag_part} does not exist, cannot assign",
                )
            assigned.add(tag_id)
            return Reply(201, {})
        if method == "DELETE":
            if tag_id not in assigned:
                raise DavError(404, "NotFound", f"Tag with id {tag_part} not present")
            assigned.discard(tag_id)
            return Reply(204, {})
        raise DavError(501, "NotImplemented", f"{method} is not modelled")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        double: NextcloudApiDouble = self.server.double  # type: ignore[attr-defined]
        reply = double.handle(self.command, self.path, headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PROPFIND(self) -> None:
        self._dispatch()

    def do_MKCOL(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the test's own output."""


# -- rendering -------------------------------------------------------------------------


def _ocs_reply(version: int, fmt: str, code: int, message: str, data: Any) -> Reply:
    if version == 1:
        statuscode = 100 if code == 200 else code
        http_status = 401 if code == 997 else 200
        ok = statuscode == 100
        meta: dict[str, Any] = {
            "status": "ok" if ok else "failure",
            "statuscode": statuscode,
            "message": "OK" if ok else message,
            "totalitems": "",
            "itemsperpage": "",
        }
    else:
        http_status = {997: 401, 998: 404, 996: 500, 999: 500}.get(code, code)
        if http_status < 200 or http_status > 600:
            http_status = 400
        ok = 200 <= code < 300
        meta = {"status": "ok" if ok else "failure", "statuscode": code}
        meta["message"] = "OK" if ok else message
    document = {"ocs": {"meta": meta, "data": _php_array(data)}}
    if fmt == "json":
        body = json.dumps(document).encode()
        content_type = "application/json; charset=utf-8"
    else:
        root = ET.Element("ocs")
        _to_xml(root, document["ocs"])
        body = b'<?xml version="1.0"?>\n' + ET.tostring(root)
        content_type = "application/xml; charset=utf-8"
    return Reply(http_status, {"Content-Type": content_type}, body)


def _php_array(value: Any) -> Any:
    """PHP's json_encode writes an empty array, even an associative one, as []."""
    if isinstance(value, dict):
        return {k: _php_array(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [_php_array(v) for v in value]
    return value


def _to_xml(parent: ET.Element, value: Any) -> None:
    """As BaseResponse::toXML: numeric keys and list items become <element>."""
    items = enumerate(value) if isinstance(value, list) else value.items()
    for key, item in items:
        tag = "element" if isinstance(key, int) or str(key).isdigit() else str(key)
        child = ET.SubElement(parent, tag)
        if isinstance(item, dict | list):
            _to_xml(child, item)
        elif isinstance(item, bool):
            child.text = "1" if item else ""
        elif item is not None:
            child.text = str(item)


def _dav_error(error: DavError) -> Reply:
    root = ET.Element(f"{{{DAV_NS}}}error")
    exception = ET.SubElement(root, f"{{{SABRE_NS}}}exception")
    exception.text = f"Sabre\\DAV\\Exception\\{error.exception}"
    ET.SubElement(root, f"{{{SABRE_NS}}}message").text = error.message
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root)
    return Reply(error.status, {"Content-Type": "application/xml; charset=utf-8"}, body)


def _collection() -> ET.Element:
    resource_type = ET.Element(f"{{{DAV_NS}}}resourcetype")
    ET.SubElement(resource_type, f"{{{DAV_NS}}}collection")
    return resource_type


def _requested_props(body: bytes) -> list[str] | None:
    """The property names a PROPFIND asks for; None for allprop (or no body)."""
    if not body.strip():
        return None
    root = ET.fromstring(body)  # noqa: S314 - the test's own client wrote it
    prop = root.find(f"{{{DAV_NS}}}prop")
    return None if prop is None else [child.tag for child in prop]


def _tag_response(
    tag: TagRecord, wanted: list[str] | None
) -> tuple[str, dict[str, Any], list[str] | None]:
    props = {
        f"{{{DAV_NS}}}resourcetype": None,
        f"{{{OC_NS}}}id": str(tag.id),
        f"{{{OC_NS}}}display-name": tag.name,
        f"{{{OC_NS}}}user-visible": "true" if tag.user_visible else "false",
        f"{{{OC_NS}}}user-assignable": "true" if tag.user_assignable else "false",
        f"{{{OC_NS}}}can-assign": "true",
    }
    return (f"/remote.php/dav/systemtags/{tag.id}", props, wanted)


def _multistatus(responses: list[tuple[str, dict[str, Any], list[str] | None]]) -> Reply:
    root = ET.Element(f"{{{DAV_NS}}}multistatus")
    default = [
        f"{{{DAV_NS}}}{name}"
        for name in ("getlastmodified", "getcontentlength", "resourcetype", "getetag")
    ] + [f"{{{DAV_NS}}}getcontenttype"]
    for href, props, wanted in responses:
        response = ET.SubElement(root, f"{{{DAV_NS}}}response")
        ET.SubElement(response, f"{{{DAV_NS}}}href").text = href
        names = wanted if wanted is not None else [n for n in default if n in props]
        found = [n for n in names if n in props]
        missing = [n for n in names if n not in props]
        for status, group in (("HTTP/1.1 200 OK", found), ("HTTP/1.1 404 Not Found", missing)):
            if not group:
                continue
            propstat = ET.SubElement(response, f"{{{DAV_NS}}}propstat")
            prop = ET.SubElement(propstat, f"{{{DAV_NS}}}prop")
            for name in group:
                value = props.get(name)
                if isinstance(value, ET.Element):
                    prop.append(value)
                    continue
                element = ET.SubElement(prop, name)
                if value is not None:
                    element.text = value
            ET.SubElement(propstat, f"{{{DAV_NS}}}status").text = status
    body = b'<?xml version="1.0"?>\n' + ET.tostring(root)
    return Reply(207, {"Content-Type": "application/xml; charset=utf-8"}, body)


def _page(names: list[str], params: dict[str, Any]) -> list[str]:
    offset = int(params.get("offset") or 0)
    limit = params.get("limit")
    return names[offset : offset + int(limit)] if limit else names[offset:]


def _basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """The user and password of a Basic Authorization header, None without a readable one."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _link_password_hash(password: str) -> str:
    """How the double stores a link's password (Nextcloud keeps a hash, "3|..." for argon)."""
    return "3|" + hashlib.sha256(password.encode()).hexdigest()


def _unauthenticated(message: str) -> Reply:
    """Sabre's 401 with the Basic challenge Nextcloud's DAV sends."""
    reply = _dav_error(DavError(401, "NotAuthenticated", message))
    reply.headers["WWW-Authenticate"] = 'Basic realm="Nextcloud", charset="UTF-8"'
    return reply


def _clean(path: str) -> str:
    return "/".join(part for part in path.split("/") if part)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""
