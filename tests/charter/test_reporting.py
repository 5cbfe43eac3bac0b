"""Reporting illicit content on the platform itself (C9): a form on every public site,
without an account or a third-party CAPTCHA, in front of a service that refuses bad input;
the moderators' API only for the administrators, behind a token."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from educloud.deployment.model import Deployment

# nginx limits the form to 10 requests a minute per address (reverse_proxy_reporting_rate,
# burst 5): a run of the checks soon after another is told 429 for a few seconds. That is
# the control working, not an answer about the form: wait for the next token, within bounds.
RATE_LIMITED_WAIT_SECONDS = 6
RATE_LIMITED_TRIES = 8


def _request(method: str, url: str, **options: Any) -> requests.Response:
    for _ in range(RATE_LIMITED_TRIES):
        response = requests.request(method, url, timeout=15, allow_redirects=False, **options)
        if response.status_code != 429 or "Retry-After" in response.headers:
            return response  # the service's own hourly limit says Retry-After: an answer
        time.sleep(RATE_LIMITED_WAIT_SECONDS)
    return response


def _reporting_path(deployment: Deployment) -> str:
    if deployment.reporting_path is None:
        pytest.fail("no reporting form: reverse_proxy_reporting_upstream is empty (reporting role)")
    return deployment.reporting_path


@pytest.mark.charter("C9")
def test_report_form_served_on_every_public_site(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    url = f"https://{public_site}{_reporting_path(deployment)}"
    response = _request("GET", url, verify=ca_bundle)
    page = response.text
    forms = re.findall(r"<form\b[^>]*>", page)
    foreign = sorted(
        set(re.findall(r'(?:src|href|action)="(https?://[^"/]+)', page))
        - {f"https://{s}" for s in deployment.own_names}
    )
    evidence(
        f"{url} -> {response.status_code}, {len(forms)} formulaire(s), "
        f"origines tierces : {', '.join(foreign) or 'aucune'}"
    )
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    assert re.search(r'<html[^>]*\blang="fr', page), "the report page is not marked French"
    assert any('method="post"' in f.lower() for f in forms), "no form posting a report"
    assert not foreign, f"third-party origins on the report page: {foreign}"
    assert "captcha" not in page.lower(), "a CAPTCHA service is referenced"


@pytest.mark.charter("C9")
def test_report_service_refuses_malformed_and_oversized_reports(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    url = f"https://{public_site}{_reporting_path(deployment)}"
    malformed = _request("POST", url, data={"description": "x"}, verify=ca_bundle)
    oversized = _request("POST", url, data={"description": "x" * 200_000}, verify=ca_bundle)
    evidence(
        f"POST {url} : signalement incomplet -> {malformed.status_code}, "
        f"corps de 200 ko -> {oversized.status_code}"
    )
    assert malformed.status_code == 400, f"a malformed report got {malformed.status_code}"
    assert oversized.status_code == 413, f"an oversized report got {oversized.status_code}"


@pytest.mark.charter("C9")
def test_moderation_api_needs_the_moderators_token(
    deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    _reporting_path(deployment)
    if deployment.moderation_site is None:
        pytest.skip("the moderation API is not exposed on an admin site in this inventory")
    url = f"https://{deployment.moderation_site}/moderation/api/reports"
    anonymous = requests.get(url, verify=ca_bundle, timeout=15, allow_redirects=False)
    forged = requests.get(
        url,
        headers={"Authorization": "Bearer not-the-token"},
        verify=ca_bundle,
        timeout=15,
        allow_redirects=False,
    )
    evidence(
        f"GET {url} : sans jeton -> {anonymous.status_code}, jeton faux -> {forged.status_code}"
    )
    assert anonymous.status_code == 401 and forged.status_code == 401, (
        f"the moderation API answered {anonymous.status_code} without a token and "
        f"{forged.status_code} with a false one"
    )
