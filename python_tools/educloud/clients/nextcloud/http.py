"""The HTTP layer of educloud's Nextcloud client: the one requests session, its errors.

Every request of educloud.clients.nextcloud goes out through `Http`: its own requests
session (timeout, CA bundle, the OCS-APIRequest header on every call, no redirects, no
proxy or netrc from the environment), and every answer is read here: an OCS envelope
(`ocs_data`), a WebDAV status (`expect`) or body (`dav_answer`). nextcloud-api-wrapper
sends its requests through the same session (`WrapperSession`). Failures are
NextcloudError (an EducloudError) saying what failed and what to do, never with the app
password in them.

Only loopback and the lab range are targeted (educloud.netpin.check_target) unless
EDUCLOUD_ALLOW_PUBLIC_TARGETS=1; lab names (*.test) must be pinned with
educloud.netpin.pinned_names, they are never looked up in DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree as ET

import requests

from educloud.errors import EducloudError
from educloud.netpin import check_target

_Parsed = TypeVar("_Parsed")
_LAB_SUFFIX = ".test"
DOWNLOAD_CHUNK = 1 << 20
"""Bytes per chunk of a streamed download (stream_download, stream_calendar..., occ fetch)."""


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


class NextcloudNoSuchAccountError(NextcloudRequestError):
    """Nextcloud has no account of that id (an operation on a user that does not exist)."""

    def __init__(self, message: str, *, user_id: str, http_status: int, ocs_status: int | None):
        super().__init__(message, http_status=http_status, ocs_status=ocs_status)
        self.user_id = user_id


class Http:
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


class WrapperSession:
    """What nextcloud-api-wrapper asks of its session (url, user, request), over Http.

    Its URLs are built from `url`, the origin only: a base path given to the wrapper
    would rewrite its API classes' paths process-wide, so Http adds the path here.
    """

    def __init__(self, http: Http, user: str) -> None:
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


class ApiBase:
    """What the OCS and WebDAV parts of NextcloudClient share (set by its constructor):
    the account, the one session, and nextcloud-api-wrapper over that session."""

    user: str
    _http: Http
    _wrapper: Any

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


def check_target_host(host: str, port: int) -> None:
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


def segment(value: str) -> str:
    """One URL path segment (ids may hold spaces, '#', '?' or '/')."""
    return quote(value, safe="")


def clean_path(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise NextcloudError(f"{path!r}: '.' and '..' are not allowed in a Nextcloud path")
    return "/".join(parts)


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """requests' auth hook that adds nothing: the request goes out without credentials."""
    return request


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
