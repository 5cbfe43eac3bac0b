"""Security headers (C10) and a Content-Security-Policy closed to third parties (C3).

Observed on the answers of a few pages of each site (its home, the privacy notice, a page
that does not exist, the account pages on Keycloak's site), and read from every server and
location of each reverse proxy's nginx configuration (`nginx -T`): one add_header in a
location drops all the server's headers there, on pages no request list would think of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from educloud.charter import headers
from educloud.deployment.model import Deployment

# A path no site serves: its answer (an error page) must carry the headers too.
ABSENT_PATH = "/educloud-verification-page-absente"
SHOWN = ("Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "Server")


def _get(site: str, ca_bundle: str, path: str = "/") -> requests.Response:
    # verify= per request: REQUESTS_CA_BUNDLE in the environment must not decide trust.
    return requests.get(
        f"https://{site}{path}", verify=ca_bundle, timeout=15, allow_redirects=False
    )


def _paths(site: str, deployment: Deployment) -> list[str]:
    # Not the report form: it is rate-limited per address (C9's checks need their share);
    # its locations' headers are read from the configuration below.
    paths = ["/", deployment.privacy_path, ABSENT_PATH]
    if urlsplit(deployment.keycloak_url).hostname == site:
        paths += [f"/realms/{realm}/account/" for realm in deployment.realms]
    return paths


_answers: dict[tuple[str, str], requests.Response] = {}


def _answers_of(site: str, deployment: Deployment, ca_bundle: str) -> list[requests.Response]:
    for path in _paths(site, deployment):
        if (site, path) not in _answers:
            _answers[site, path] = _get(site, ca_bundle, path)
    return [_answers[site, path] for path in _paths(site, deployment)]


def _path(response: requests.Response) -> str:
    return urlsplit(response.url).path


@pytest.mark.charter("C10")
def test_security_headers(
    site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    problems, seen = [], []
    for response in _answers_of(site, deployment, ca_bundle):
        seen.append(
            f"https://{site}{_path(response)} -> {response.status_code} ; "
            + " ; ".join(f"{h}: {response.headers.get(h)}" for h in SHOWN)
        )
        problems += [
            f"{_path(response)} ({response.status_code}): {problem}"
            for problem in headers.security_header_problems(response.headers)
        ]
    evidence("\n".join(seen))
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C3")
def test_csp_allows_only_own_origin(
    site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    problems, seen = [], []
    for response in _answers_of(site, deployment, ca_bundle):
        seen.append(
            f"https://{site}{_path(response)} -> {response.status_code} ; Content-Security-Policy: "
            + " | ".join(response.raw.headers.getlist("Content-Security-Policy"))
        )
        problems += [
            f"{_path(response)} ({response.status_code}): {problem}"
            for problem in headers.csp_problems(response.headers, deployment.own_names)
        ]
    evidence("\n".join(seen))
    assert not problems, "; ".join(problems)


_dumps: dict[str, str] = {}


def _nginx_dump(proxy_host_name: str, connect: Callable[[str], Any]) -> str:
    """The whole configuration nginx runs on the host, every included file in it."""
    if proxy_host_name not in _dumps:
        _dumps[proxy_host_name] = str(connect(proxy_host_name).check_output("nginx -T"))
    return _dumps[proxy_host_name]


@pytest.mark.charter("C10")
def test_every_location_sends_security_headers(
    proxy_host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    dump = _nginx_dump(proxy_host_name, connect)
    scopes = headers.header_scopes(dump)
    evidence(
        f"{proxy_host_name} : nginx -T, {len(headers.split_dump(dump))} fichiers, "
        f"{len(scopes)} blocs server et location qui répondent hors de la boucle locale"
    )
    assert scopes, "nginx -T shows no server answering clients"
    problems = headers.location_header_problems(dump)
    assert not problems, "locations without the strict headers: " + " | ".join(problems)


@pytest.mark.charter("C3")
def test_every_location_csp_allows_only_own_origin(
    proxy_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    dump = _nginx_dump(proxy_host_name, connect)
    scopes = headers.header_scopes(dump)
    evidence(
        f"{proxy_host_name} : Content-Security-Policy de {len(scopes)} blocs server et "
        "location de nginx -T"
    )
    problems = headers.location_csp_problems(dump, deployment.own_names)
    assert not problems, "locations whose CSP allows another origin: " + " | ".join(problems)
