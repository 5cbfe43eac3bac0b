"""The WebDAV half of educloud's Nextcloud client: files, system tags, calendars, contacts,
public links.

Files, calendars and address books go through requests directly; nextcloud-api-wrapper
builds the system-tag requests. Everything goes out through educloud's session
(educloud.clients.nextcloud.http), which reads the answers' statuses; the multistatus
bodies are read here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET

import requests

from educloud.clients.nextcloud.http import (
    DOWNLOAD_CHUNK,
    ApiBase,
    NextcloudConnectionError,
    NextcloudError,
    NextcloudRequestError,
    as_bool,
    clean_path,
    segment,
)

_DAV = "{DAV:}"
_OC = "{http://owncloud.org/ns}"
_CALDAV_CALENDAR = "{urn:ietf:params:xml:ns:caldav}calendar"
_CARDDAV_ADDRESSBOOK = "{urn:ietf:params:xml:ns:carddav}addressbook"
# Address books the server builds from other accounts (the system address book): not
# data the user created (apps/dav/lib/CardDAV/SyncService and ContactsManager).
_GENERATED_BOOK_PREFIXES = ("z-server-generated--", "z-app-generated--")
PUBLIC_DAV_HEADERS = {"X-Requested-With": "XMLHttpRequest"}
"""Sent on public.php/dav as Nextcloud's web UI sends them (public_link_owner)."""
# The user name "anonymous" and an empty password: a protected link's password is refused.
_PUBLIC_DAV_PROBE = {
    **PUBLIC_DAV_HEADERS,
    "Authorization": "Basic " + base64.b64encode(b"anonymous:").decode(),
}


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


class WebDavApi(ApiBase):
    """Files, system tags, calendars, contacts and public links of one Nextcloud account
    (NextcloudClient)."""

    # -- public links, as anyone following them ------------------------------------------

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
        (apps/dav FilesPlugin). The request carries no credentials of this client: its
        password is not sent to a public endpoint.

        With outgoing federated sharing off, as the nextcloud role sets it, Nextcloud
        answers 401 to any request but GET there that lacks "X-Requested-With:
        XMLHttpRequest" (nextcloud/server apps/dav/appinfo/v2/publicremote.php); its web
        UI sends that header on every request of a public link's page (@nextcloud/files
        lib/dav/dav.ts, davGetClient), and so does this. The link's password is asked
        first (PublicAuth runs in Sabre's auth plugin, before publicremote.php's check),
        and both refusals are the same bare 401: a 401 is asked once more with the name
        "anonymous" and no password. A protected link then answers PublicAuth's challenge
        ("DummyBasic" since the header arrived); the other refusal has no challenge.
        """
        what = f"read the owner of public link {_public_token(token)}"
        url = self._http.url(f"/public.php/dav/files/{token}")
        response = self._send_propfind(
            url, 0, _OWNER_PROPFIND_BODY, anonymous=True, headers=PUBLIC_DAV_HEADERS
        )
        if response.status_code == 401:
            response = self._send_propfind(
                url, 0, _OWNER_PROPFIND_BODY, anonymous=True, headers=_PUBLIC_DAV_PROBE
            )
            if response.status_code == 401 and response.headers.get("WWW-Authenticate"):
                return None  # the link's password is asked
            if response.status_code == 401:
                raise NextcloudRequestError(
                    f"{what}: Nextcloud refused it although it was sent with "
                    "X-Requested-With: XMLHttpRequest, which Nextcloud requires on "
                    "public.php/dav while outgoing federated sharing is off: a proxy in "
                    "front of Nextcloud drops that header; let it through",
                    http_status=401,
                )
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
        folder = clean_path(path)
        entries = self._propfind(f"list folder /{folder}", folder, depth=1)
        return [entry for entry in entries if entry.path != folder]

    def file_id(self, path: str) -> int:
        """The id Nextcloud gives the file or folder (oc:fileid), as tags and shares use."""
        what = f"file id of {path}"
        entries = self._propfind(what, clean_path(path), depth=0)
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
        pending = [clean_path(path)]
        while pending:
            folder = pending.pop()
            entries = self.list_folder(folder)
            yield from entries
            # Reversed so that the first subfolder is walked first (sorted output).
            pending.extend(entry.path for entry in reversed(entries) if entry.is_dir)

    def _propfind(self, what: str, path: str, depth: int) -> list[DavEntry]:
        response = self._send_propfind(self._dav_url(path), depth, _PROPFIND_BODY)
        hints = {404: f"{path or '/'} does not exist in {self.user}'s files"}
        self._http.expect(what, response, (207,), hints)
        root = unquote(urlsplit(self._dav_url("")).path)
        return self._http.dav_answer(what, response, lambda content: _dav_entries(content, root))

    def _dav_url(self, path: str) -> str:
        cleaned = clean_path(path)
        quoted = "/".join(segment(part) for part in cleaned.split("/")) if cleaned else ""
        return self._http.url(f"/remote.php/dav/files/{segment(self.user)}/{quoted}")

    # -- calendars and contacts: CalDAV and CardDAV exports ----------------------------
    # https://docs.nextcloud.com/server/latest/developer_manual/client_apis/WebDAV/index.html
    # (calendars/<uid>/, addressbooks/users/<uid>/); "?export" answers the whole collection
    # as one iCalendar or vCard document (sabre's ICSExportPlugin and VCFExportPlugin).

    def list_calendars(self) -> list[DavCollection]:
        """This user's own calendars (not the scheduling inbox/outbox, the trash bin, or
        calendars others share with them)."""
        home = f"/remote.php/dav/calendars/{segment(self.user)}/"
        found = self._collections(f"list calendars of {self.user}", home)
        return [c for c in found if _CALDAV_CALENDAR in c.resource_types and self._owns(c)]

    def list_address_books(self) -> list[DavCollection]:
        """This user's own address books (not the generated system address book, or books
        others share with them)."""
        home = f"/remote.php/dav/addressbooks/users/{segment(self.user)}/"
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
        url = self._http.url(f"/remote.php/dav/calendars/{segment(self.user)}/{segment(name)}")
        hints = {404: f"{self.user} has no calendar {name} (list_calendars)"}
        return self._stream(f"export calendar {name}", url + "?export", chunk_size, hints)

    def stream_address_book(self, name: str, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
        """The address book as one vCard document (text/vcard), in chunks."""
        url = self._http.url(
            f"/remote.php/dav/addressbooks/users/{segment(self.user)}/{segment(name)}"
        )
        hints = {404: f"{self.user} has no address book {name} (list_address_books)"}
        return self._stream(f"export address book {name}", url + "?export", chunk_size, hints)

    def _owns(self, collection: DavCollection) -> bool:
        owner = collection.owner_principal
        return owner is None or owner.rstrip("/").rsplit("/", 1)[-1] == self.user

    def _collections(self, what: str, home: str) -> list[DavCollection]:
        response = self._send_propfind(self._http.url(home), 1, _COLLECTIONS_PROPFIND_BODY)
        hints = {404: f"no such DAV home for {self.user} (is the dav app enabled?)"}
        self._http.expect(what, response, (207,), hints)
        root = self._http.base_path + home
        return self._http.dav_answer(
            what, response, lambda content: _dav_collections(content, root)
        )

    def _send_propfind(
        self,
        url: str,
        depth: int,
        body: bytes,
        *,
        anonymous: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """A PROPFIND of `url` to `depth` asking for the properties `body` names."""
        return self._http.send(
            "PROPFIND",
            url,
            headers={
                "Depth": str(depth),
                "Content-Type": "application/xml; charset=utf-8",
                **(headers or {}),
            },
            data=body,
            anonymous=anonymous,
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


def _tag(item: Any) -> Tag:
    return Tag(
        id=int(item.id),
        name=str(item.display_name),
        user_visible=as_bool(item.user_visible),
        user_assignable=as_bool(item.user_assignable),
    )


def _propfind_body(props: bytes) -> bytes:
    """A d:propfind body asking for `props` (d: is DAV:, oc: ownCloud's namespace)."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
        + props
        + b"</d:prop></d:propfind>"
    )


_PROPFIND_BODY = _propfind_body(
    b"<d:resourcetype/><d:getlastmodified/><d:getetag/><d:getcontenttype/>"
    b"<d:getcontentlength/><oc:fileid/><oc:size/>"
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


_OWNER_PROPFIND_BODY = _propfind_body(b"<oc:owner-id/><oc:fileid/>")


def _public_token(token: str) -> str:
    if not token or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
        raise NextcloudError(f"{token!r} is not a public link token (letters, digits, -, _)")
    return token


_COLLECTIONS_PROPFIND_BODY = _propfind_body(
    b"<d:resourcetype/><d:displayname/><oc:owner-principal/>"
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
