"""The Nextcloud API double's WebDAV routes: files, system tags, calendars and contacts,
and a public link's page and WebDAV.

Part of tests.doubles.nextcloud_api_double, which says what it models and from which of
Nextcloud's files; each answer below names its own.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree as ET

from tests.doubles.nextcloud_model import (
    CALDAV_NS,
    CARDDAV_NS,
    DAV_NS,
    INSTANCE_ID,
    NC_NS,
    OC_NS,
    DavError,
    DoubleState,
    Node,
    Reply,
    ShareRecord,
    TagRecord,
    basic_credentials,
    clean,
    collection,
    dav_error,
    link_password_hash,
    multistatus,
    parent_path,
    requested_props,
    tag_response,
    unauthenticated,
)


class DavRoutes(DoubleState):
    """/remote.php/dav, and a public link's /s/<token> and /public.php/dav."""

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
            return unauthenticated("No public access to this resource.")
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
            return dav_error(error)

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
        path = clean("/".join(segments))
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
                    (k, n) for k, n in home.items() if k and parent_path(k) == path and k != path
                )
            wanted = requested_props(body)
            responses = [
                (self._file_href(user, k, n), self._file_props(home, k, n), wanted)
                for k, n in entries
            ]
            return multistatus(responses)
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
            f"{{{DAV_NS}}}resourcetype": collection() if node.is_dir else None,
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
        name = clean("/".join(segments))
        if method == "PROPFIND" and not name:
            wanted = requested_props(body)
            responses = [(home, {f"{{{DAV_NS}}}resourcetype": collection()}, wanted)]
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
                resource_type = collection()
                ET.SubElement(resource_type, tag)
                props: dict[str, Any] = {
                    f"{{{DAV_NS}}}resourcetype": resource_type,
                    f"{{{DAV_NS}}}displayname": display_name,
                    f"{{{OC_NS}}}owner-principal": f"principals/users/{user}",
                }
                responses.append((f"{home}{quote(collection_name)}/", props, wanted))
            return multistatus(responses)
        record = records.get(name)
        if record is None:
            raise DavError(404, "NotFound", f"Node with name '{name}' could not be found")
        if method == "GET":
            if "export" not in query:
                raise DavError(501, "NotImplemented", "GET is only implemented on File objects")
            content_type = "text/calendar" if calendars else "text/vcard"
            return Reply(200, {"Content-Type": f"{content_type}; charset=utf-8"}, record.content)
        raise DavError(501, "NotImplemented", f"{method} is not modelled")

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
            wanted = requested_props(body)
            if segments:
                tag_or_none = self.tags.get(int(segments[0])) if segments[0].isdigit() else None
                if tag_or_none is None:
                    raise DavError(404, "NotFound", f"Tag with id {segments[0]} not found")
                return multistatus([tag_response(tag_or_none, wanted)])
            return multistatus(self._tag_listing("/remote.php/dav/systemtags/", self.tags, wanted))
        raise DavError(501, "NotImplemented", f"{method} is not modelled")

    def _tag_listing(
        self, href: str, tags: dict[int, TagRecord], wanted: list[str] | None
    ) -> list[tuple[str, dict[str, Any], list[str] | None]]:
        root = (href, {f"{{{DAV_NS}}}resourcetype": collection()}, wanted)
        return [root] + [tag_response(t, wanted) for t in tags.values()]

    def _relations(self, method: str, segments: list[str], body: bytes) -> Reply:
        file_id = int(segments[0]) if segments[0].isdigit() else -1
        if self._node_by_id(file_id) is None:
            raise DavError(404, "NotFound", f"File with id {segments[0]} not found")
        assigned = self.tag_assignments.setdefault(file_id, set())
        tag_part = segments[1] if len(segments) > 1 and segments[1] else None
        if method == "PROPFIND" and tag_part is None:
            tags = {t: self.tags[t] for t in sorted(assigned) if t in self.tags}
            href = f"/remote.php/dav/systemtags-relations/files/{file_id}/"
            return multistatus(self._tag_listing(href, tags, requested_props(body)))
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

    def _public_link(self, token: str) -> Reply:
        """GET /s/<token> (apps/files_sharing ShareController::showShare): the page, 303
        to the password prompt for a protected link, 404 once the share is gone."""
        share = self._link(token)
        if share is None:
            return Reply(404, {"Content-Type": "text/html; charset=utf-8"}, b"Share not found")
        if share.password_hash:
            location = f"/index.php/s/{token}/authenticate/showShare"
            return Reply(303, {"Location": location})
        html = f"<html><body>{share.path.rsplit('/', 1)[-1]}</body></html>".encode()
        return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, html)

    def _public_dav(self, method: str, token: str, headers: dict[str, str], body: bytes) -> Reply:
        """/public.php/dav/files/<token>: a public link's WebDAV, in Nextcloud's order.

        nextcloud/server apps/dav/appinfo/v2/publicremote.php (read at 0c279a65): its
        backends are PublicAuth then BearerAuth (lines 64-80), run by Sabre's auth plugin
        on beforeMethod:* at priority 10 (sabre/dav lib/DAV/Auth/Plugin.php initialize);
        its view callback, which holds the X-Requested-With gate (lines 100-110), runs on
        beforeMethod:* at priority 30, "after auth (10)" (apps/dav/lib/Connector/Sabre/
        ServerFactory.php createServer). So the link's password is asked before the gate.
        """
        # Both checks split the header on "," and look for the exact item (in_array on
        # explode(','), no trimming): publicremote.php line 104, PublicAuth.php line 197.
        xhr = "XMLHttpRequest" in headers.get("x-requested-with", "").split(",")
        share = self._link(token)
        refused = self._public_auth(share, headers, xhr)
        if refused is not None:
            return refused
        assert share is not None  # _public_auth answered 404 or 401 without one
        # publicremote.php lines 101-110: a request other than GET, without the AJAX
        # header, while outgoing federated sharing is off (the role's setting:
        # FederatedShareProvider::isOutgoingServer2serverShareEnabled false) is refused
        # with a bare NotAuthenticated: 401, empty s:message, no WWW-Authenticate.
        if method != "GET" and not xhr and not self.outgoing_federation:
            return dav_error(DavError(401, "NotAuthenticated", ""))
        if method != "PROPFIND":
            return dav_error(DavError(501, "NotImplemented", f"{method} is not modelled"))
        home = self._home(share.owner)
        node = home.get(clean(share.path))
        if node is None:  # publicremote.php: the shared node is gone, `throw new NotFound()`
            return dav_error(DavError(404, "NotFound", ""))
        props = self._file_props(home, clean(share.path), node)
        # apps/dav/lib/Connector/Sabre/FilesPlugin.php: oc:owner-id is the owner's uid.
        props[f"{{{OC_NS}}}owner-id"] = share.owner
        href = f"/public.php/dav/files/{token}" + ("/" if node.is_dir else "")
        return multistatus([(href, props, requested_props(body))])

    def _public_auth(
        self, share: ShareRecord | None, headers: dict[str, str], xhr: bool
    ) -> Reply | None:
        """PublicAuth::check (nextcloud/server apps/dav/lib/Connector/Sabre/PublicAuth.php,
        read at d6f8d3d5): None when it lets the request through, else Nextcloud's answer.
        Not modelled: its brute-force throttle and the strict cookie check (line 66)."""
        credentials = basic_credentials(headers)
        if credentials is None:
            # checkToken (lines 125-151): an unknown token is NotFound (line 133), a
            # protected link without its password a bare NotAuthenticated (line 148);
            # thrown from the backend itself, so Sabre's challenge is not sent.
            if share is None:
                return dav_error(DavError(404, "NotFound", ""))
            if share.password_hash:
                return dav_error(DavError(401, "NotAuthenticated", ""))
            return None
        # validateUserPass (lines 166-215) never reads the user name. Right password: in.
        password = credentials[1]
        if share is not None and (
            not share.password_hash or link_password_hash(password) == share.password_hash
        ):
            return None
        if share is not None and xhr:
            # Lines 197-201: over AJAX, a dummy challenge so that browsers show no prompt.
            reply = dav_error(
                DavError(401, "NotAuthenticated", "Cannot authenticate over ajax calls")
            )
            reply.headers["WWW-Authenticate"] = 'DummyBasic realm="Nextcloud"'
            return reply
        # validateUserPass false (an unknown token too, lines 170-173): check() returns
        # "Username or password was incorrect" (line 79); BearerAuth adds sabre's
        # AbstractBearer reason; Sabre's auth plugin challenges, then throws.
        return unauthenticated(
            "Username or password was incorrect, No 'Authorization: Bearer' header found. "
            "Either the client didn't send one, or the server is mis-configured"
        )

    def _link(self, token: str) -> ShareRecord | None:
        return next((s for s in self.shares.values() if token and s.token == token), None)
