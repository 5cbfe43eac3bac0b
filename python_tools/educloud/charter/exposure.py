"""What a public name exposes (C10): no administration path whatever its encoding, no
master realm, no page for a name the deployment does not serve.

A reverse proxy checks the path it decoded and normalised, while a service may route on
the raw bytes it is handed: "/admin/realms/..%2f..%2f" is "/" to nginx and an admin path
to Keycloak (issue #29). So the checks send raw paths (never normalised by the client) in
the encodings that have split proxies from their services before, and judge by what
answers: nginx's own error page, or the service.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass

# A name no deployment serves (RFC 6761 reserves .invalid).
UNKNOWN_NAME = "educloud-verification.invalid"
# nginx's own error pages end with this line (ngx_http_special_response.c).
NGINX_PAGE_MARK = b"<center>nginx</center>"


@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    body: bytes

    @property
    def from_nginx(self) -> bool:
        """The proxy answered itself (an error page of its own): the service saw nothing."""
        return NGINX_PAGE_MARK in self.body


def request(
    site: str,
    path: str,
    ca_bundle: str | bool,
    *,
    method: str = "GET",
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    tls: bool = True,
) -> Answer | None:
    """One request with `path` sent byte for byte, to `site` (TLS with its name as SNI),
    with `host` as the Host header (default: the site). None when the connection closes
    without an answer (nginx's 444, a refused handshake)."""
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context(
            cafile=ca_bundle if isinstance(ca_bundle, str) else None
        )
        connection = http.client.HTTPSConnection(site, 443, timeout=15, context=context)
    else:
        connection = http.client.HTTPConnection(site, 80, timeout=15)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or site)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, response.getheader("Location") or "", response.read())
    except (ConnectionError, http.client.RemoteDisconnected, ssl.SSLError):
        return None
    finally:
        connection.close()


def encoded_variants(target: str, inside: tuple[str, ...] = ()) -> list[str]:
    """Raw paths that name `target` (an absolute path) once decoded and normalised, or to a
    service that decodes more than the proxy does: encoded slashes and dots, doubled and
    encoded first characters, backslashes, and each from below the prefixes in `inside`
    (the paths a site does forward), plus the form that normalises to "/" (issue #29)."""
    rest = target.lstrip("/")
    segments = rest.rstrip("/").split("/")
    # "/" to the proxy, below the target to a service routing on raw segments: issue #29's
    # "/admin/realms/..%2f..%2f" (Keycloak read "../.." as a realm's name).
    climbs = ["/" + "/".join(segments[:k]) + "/" + "..%2f" * k for k in range(1, len(segments) + 1)]
    variants = [
        target,
        *climbs,
        f"/educloud-x/..%2f{rest}",
        f"/educloud-x/%2e%2e/{rest}",
        f"/educloud-x/%2E%2E%2F{rest}",
        f"//{rest}",
        f"/%2f{rest}",
        f"/%{ord(rest[0]):02x}{rest[1:]}",
        f"/{rest};educloud=x",
        f"/educloud-x/..%5c{rest}",
    ]
    for prefix in inside:
        ups = prefix.strip("/").count("/") + 1  # ".." segments up from below the prefix
        variants += [
            prefix + "..%2f" * ups + rest,
            prefix + "%2e%2e/" * ups + rest,
            prefix + "..%5c" * ups + rest,
            prefix + "..\\" * ups + rest,
            prefix + "..;/" * ups + rest,
        ]
    return list(dict.fromkeys(variants))


def keycloak_admin_reached(answer: Answer | None) -> bool:
    """Keycloak's admin API answered (with an administrator's token, sent on purpose): its
    data, or its own "Realm not found" / 401 for a realm name the path mangled."""
    if answer is None or answer.from_nginx:
        return False
    return answer.status in (200, 401) or b"Realm not found" in answer.body


# The token endpoint's own refusals (RFC 6749, section 5.2): the realm answered.
OAUTH_ERRORS = frozenset(
    {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client"}
    | {"unsupported_grant_type", "invalid_scope"}
)


def realm_reached(answer: Answer | None, realm: str) -> bool:
    """`realm` answered: its discovery document (its issuer), or its token endpoint's OAuth
    error; not the proxy's page, nor Keycloak's 404 for a path of another realm."""
    if answer is None or answer.from_nginx:
        return False
    try:
        document = json.loads(answer.body)
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    issuer = str(document.get("issuer") or "")
    return issuer.rstrip("/").endswith(f"/realms/{realm}") or document.get("error") in OAUTH_ERRORS


def unknown_name_problem(answer: Answer | None, scheme: str) -> str | None:
    """What is wrong with the answer to a request for a name no site serves: anything but
    421 or a closed connection (a page, a redirect that carries the made-up name)."""
    if answer is None or answer.status == 421:
        return None
    where = f" vers {answer.location}" if answer.location else ""
    return f"{scheme} : Host {UNKNOWN_NAME} reçoit {answer.status}{where} au lieu de 421"
