"""The Nextcloud API double's model: its records, its errors, its in-memory state, and how
it renders Nextcloud's answers (OCS envelopes, Sabre's WebDAV bodies).

Part of tests.doubles.nextcloud_api_double (which says what it models and from which of
Nextcloud's files); the routes are tests.doubles.nextcloud_ocs_routes and
tests.doubles.nextcloud_dav_routes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
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


class DoubleState:
    """The in-memory Nextcloud the routes read and change (set up without HTTP)."""

    def __init__(
        self,
        admin_user: str = "admin",
        admin_password: str | None = None,
        *,
        outgoing_federation: bool = False,
    ) -> None:
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
        self.outgoing_federation = outgoing_federation

    @property
    def url(self) -> str:
        """The base URL the double is served at (NextcloudApiDouble)."""
        raise NotImplementedError

    def storage_used(self, user_id: str) -> int:
        """Bytes of the user's files, as Nextcloud reports them in `quota.used`."""
        return sum(len(node.content) for node in self.files.get(user_id, {}).values())

    def _home(self, user: str) -> dict[str, Node]:
        return self.files.setdefault(user, {"": Node(next(self._file_ids), is_dir=True)})

    def _node_by_id(self, file_id: int) -> Node | None:
        for home in self.files.values():
            for node in home.values():
                if node.file_id == file_id:
                    return node
        return None


# -- rendering -------------------------------------------------------------------------


def ocs_reply(version: int, fmt: str, code: int, message: str, data: Any) -> Reply:
    """An OCS answer for `code` (200: success), as nextcloud/server's
    lib/private/AppFramework/OCS/V1Response.php and V2Response.php render it (read at
    00126022): v1 says HTTP 200 for every code but 997 (401), statuscode 100 for success;
    v2 maps 997 to 401, 998 to 404, 996 and 999 to 500, any other code below 200 or above
    600 to 400, and passes the rest through. An OCSException's code becomes the status
    (lib/private/AppFramework/Middleware/OCSMiddleware.php afterException)."""
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
    document = {"ocs": {"meta": meta, "data": php_array(data)}}
    if fmt == "json":
        body = json.dumps(document).encode()
        content_type = "application/json; charset=utf-8"
    else:
        root = ET.Element("ocs")
        to_xml(root, document["ocs"])
        body = b'<?xml version="1.0"?>\n' + ET.tostring(root)
        content_type = "application/xml; charset=utf-8"
    return Reply(http_status, {"Content-Type": content_type}, body)


def php_array(value: Any) -> Any:
    """PHP's json_encode writes an empty array, even an associative one, as []."""
    if isinstance(value, dict):
        return {k: php_array(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [php_array(v) for v in value]
    return value


def to_xml(parent: ET.Element, value: Any) -> None:
    """As BaseResponse::toXML: numeric keys and list items become <element>."""
    items = enumerate(value) if isinstance(value, list) else value.items()
    for key, item in items:
        tag = "element" if isinstance(key, int) or str(key).isdigit() else str(key)
        child = ET.SubElement(parent, tag)
        if isinstance(item, dict | list):
            to_xml(child, item)
        elif isinstance(item, bool):
            child.text = "1" if item else ""
        elif item is not None:
            child.text = str(item)


def dav_error(error: DavError) -> Reply:
    root = ET.Element(f"{{{DAV_NS}}}error")
    exception = ET.SubElement(root, f"{{{SABRE_NS}}}exception")
    exception.text = f"Sabre\\DAV\\Exception\\{error.exception}"
    ET.SubElement(root, f"{{{SABRE_NS}}}message").text = error.message
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root)
    return Reply(error.status, {"Content-Type": "application/xml; charset=utf-8"}, body)


def collection() -> ET.Element:
    resource_type = ET.Element(f"{{{DAV_NS}}}resourcetype")
    ET.SubElement(resource_type, f"{{{DAV_NS}}}collection")
    return resource_type


def requested_props(body: bytes) -> list[str] | None:
    """The property names a PROPFIND asks for; None for allprop (or no body)."""
    if not body.strip():
        return None
    root = ET.fromstring(body)  # noqa: S314 - the test's own client wrote it
    prop = root.find(f"{{{DAV_NS}}}prop")
    return None if prop is None else [child.tag for child in prop]


def tag_response(
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


def multistatus(responses: list[tuple[str, dict[str, Any], list[str] | None]]) -> Reply:
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


def page(names: list[str], params: dict[str, Any]) -> list[str]:
    offset = int(params.get("offset") or 0)
    limit = params.get("limit")
    return names[offset : offset + int(limit)] if limit else names[offset:]


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """The user and password of a Basic Authorization header, None without a readable one."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def link_password_hash(password: str) -> str:
    """How the double stores a link's password (Nextcloud keeps a hash, "3|..." for argon)."""
    return "3|" + hashlib.sha256(password.encode()).hexdigest()


def unauthenticated(message: str) -> Reply:
    """Sabre's 401 with the Basic challenge Nextcloud's DAV sends."""
    reply = dav_error(DavError(401, "NotAuthenticated", message))
    reply.headers["WWW-Authenticate"] = 'Basic realm="Nextcloud", charset="UTF-8"'
    return reply


def clean(path: str) -> str:
    return "/".join(part for part in path.split("/") if part)


def parent_path(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""
