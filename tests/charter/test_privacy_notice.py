"""The privacy notice, served in French by the platform itself (C6, C9)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
import requests

from educloud.charter.deployment import Deployment
from educloud.policy import Policies

COUNTRY_NAMES = {"FR": "France"}


def _notice(site: str, deployment: Deployment, ca_bundle: str) -> requests.Response:
    return requests.get(
        f"https://{site}{deployment.privacy_path}",
        verify=ca_bundle,
        timeout=15,
        allow_redirects=False,
    )


def _text(body: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.charter("C6")
def test_privacy_notice_served_in_french(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    response = _notice(public_site, deployment, ca_bundle)
    evidence(
        f"https://{public_site}{deployment.privacy_path} -> {response.status_code}, "
        f"{response.headers.get('Content-Type')}, {len(response.content)} bytes"
    )
    assert response.status_code == 200, f"no notice at {deployment.privacy_path}"
    assert "text/html" in response.headers.get("Content-Type", "")
    assert re.search(r'<html[^>]*\blang="fr', response.text), "the notice is not marked French"
    for section in ("conservation", "hebergement", "droits", "registre"):
        assert f'id="{section}"' in response.text, f"the notice has no '{section}' section"


@pytest.mark.charter("C6")
def test_privacy_notice_states_retention_and_hosting(
    public_site: str,
    deployment: Deployment,
    policies: Policies,
    ca_bundle: str,
    evidence: Callable[[str], None],
) -> None:
    text = _text(_notice(public_site, deployment, ca_bundle).text)
    missing = [
        f"{name} ({rule['retention_days']} j)"
        for name, rule in policies.retention.items()
        if rule["description"] not in text
        or not re.search(rf"\b{rule['retention_days']}\s*jours?\b", text)
    ]
    countries = [COUNTRY_NAMES.get(c, c) for c in policies.countries_allowed]
    evidence(
        f"https://{public_site}{deployment.privacy_path} : "
        f"{len(policies.retention) - len(missing)}/{len(policies.retention)} "
        "catégories de conservation indiquées ; hébergement : "
        + ", ".join(c for c in countries if c in text)
    )
    assert not missing, f"retention not stated for: {missing}"
    assert any(c in text for c in countries), "the hosting country is not stated"


@pytest.mark.charter("C9")
def test_privacy_notice_gives_reporting_contact(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    body = _notice(public_site, deployment, ca_bundle).text
    section = body.split('id="signalement"', 1)[1] if 'id="signalement"' in body else ""
    contact = re.search(r'href="mailto:([^"]+)"', section)
    evidence(
        f"https://{public_site}{deployment.privacy_path}#signalement: "
        + (f"mailto:{contact.group(1)}" if contact else "aucun contact de signalement")
    )
    assert contact, "the notice gives no way to report illicit content"
