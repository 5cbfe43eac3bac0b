"""Security headers (C10) and a Content-Security-Policy closed to third parties (C3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from educloud.charter import headers


def _get(site: str, ca_bundle: str, path: str = "/") -> requests.Response:
    # verify= per request: REQUESTS_CA_BUNDLE in the environment must not decide trust.
    return requests.get(
        f"https://{site}{path}", verify=ca_bundle, timeout=15, allow_redirects=False
    )


@pytest.mark.charter("C10")
def test_security_headers(site: str, ca_bundle: str, evidence: Callable[[str], None]) -> None:
    response = _get(site, ca_bundle)
    shown = ("Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "Server")
    evidence(
        f"https://{site}/ -> {response.status_code}; "
        + "; ".join(f"{h}: {response.headers.get(h)}" for h in shown)
    )
    problems = headers.security_header_problems(response.headers)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C3")
def test_csp_allows_only_own_origin(
    site: str, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    response = _get(site, ca_bundle)
    evidence(
        f"https://{site}/ Content-Security-Policy: "
        f"{response.headers.get('Content-Security-Policy')}"
    )
    problems = headers.csp_problems(response.headers)
    assert not problems, "; ".join(problems)
