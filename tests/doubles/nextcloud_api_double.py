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
  Getting and deleting a user follow apps/provisioning_api UsersController::getUser and
  ::deleteUser: 998 (v1 HTTP 200, v2 HTTP 404) for an account that does not exist or
  that the caller may not delete, 101 for deleting oneself (nextcloud/server#28894).
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
  client_apis/WebDAV/basic.rst "Public shares"; apps/dav/appinfo/v2/publicremote.php and
  apps/dav/lib/Connector/Sabre/PublicAuth.php): the link's password first (any user name;
  401 without it, 404 for an unknown token), then, with outgoing federated sharing off as
  the nextcloud role sets it, 401 to any method but GET sent without
  "X-Requested-With: XMLHttpRequest"; PROPFIND of the shared node, whose oc:owner-id is
  the owner's uid (apps/dav FilesPlugin).

Not modelled: sessions and cookies, brute-force throttling, subadmins and delegated
admins, password confirmation, quota enforcement, chunked upload, locks, versions, trash.

The double is split by concern: tests.doubles.nextcloud_model (records, state, rendering),
tests.doubles.nextcloud_ocs_routes (OCS) and tests.doubles.nextcloud_dav_routes (WebDAV,
public links); this module serves them over HTTP.
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.doubles.nextcloud_dav_routes import DavRoutes
from tests.doubles.nextcloud_model import (
    SHARE_GROUP,
    SHARE_LINK,
    SHARE_USER,
    Account,
    DavCollectionRecord,
    Node,
    Reply,
    SeenRequest,
    basic_credentials,
    clean,
)
from tests.doubles.nextcloud_ocs_routes import OcsRoutes

__all__ = ["SHARE_GROUP", "SHARE_LINK", "SHARE_USER", "Account", "NextcloudApiDouble"]


class NextcloudApiDouble(OcsRoutes, DavRoutes):
    """In-memory Nextcloud APIs behind a real HTTP server on 127.0.0.1: a double.

    Use as a context manager (or start()/close()); `url` is the base URL to give the
    client, `admin_user`/`admin_password` the credentials it accepts.
    `outgoing_federation` is files_sharing's outgoing_server2server_share_enabled: off
    as the nextcloud role sets it (roles/nextcloud/vars/main.yml), on as Nextcloud's own
    default "yes" (apps/federatedfilesharing/lib/FederatedShareProvider.php
    isOutgoingServer2serverShareEnabled).
    """

    def __init__(
        self,
        admin_user: str = "admin",
        admin_password: str | None = None,
        *,
        outgoing_federation: bool = False,
    ) -> None:
        super().__init__(admin_user, admin_password, outgoing_federation=outgoing_federation)
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
        parts = clean(path).split("/")
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
            if path.startswith(prefix):
                return self._public_dav(method, path[len(prefix) :].strip("/"), headers, body)
            for prefix in ("/index.php/s/", "/s/"):
                # The public share page (ShareController::showShare): 404 once it is gone.
                if path.startswith(prefix) and method == "GET":
                    return self._public_link(path[len(prefix) :].strip("/"))
            return Reply(404, {"Content-Type": "text/plain"}, b"not a Nextcloud API path")

    def _authenticate(self, headers: dict[str, str]) -> str | None:
        credentials = basic_credentials(headers)
        if credentials is None:
            return None
        user, password = credentials
        account = self.accounts.get(user)
        if account is None or not account.enabled:
            return None
        # An app password (occ user:auth-tokens:add) is accepted like the login password.
        accepted = [account.password, *self.app_passwords.get(user, ())]
        return user if any(secrets.compare_digest(p, password) for p in accepted) else None


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
