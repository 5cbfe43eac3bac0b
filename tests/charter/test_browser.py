"""Every public page, loaded in headless Chromium, contacts only the deployment (C3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from educloud.charter import browser
from educloud.charter.deployment import Deployment

_visits: dict[str, browser.PageVisit] = {}


def _visit(url: str, deployment: Deployment) -> browser.PageVisit:
    if url not in _visits:
        (_visits[url],) = browser.visit_pages([url], deployment.pins())
    return _visits[url]


@pytest.mark.charter("C3")
def test_public_page_contacts_only_the_deployment(
    public_page: str, deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    visit = _visit(public_page, deployment)
    evidence(
        f"{public_page} -> {visit.status}, {len(visit.requested)} requêtes ; origines contactées : "
        + ", ".join(visit.origins)
    )
    outside = browser.third_party_requests(visit, deployment.own_names)
    assert not outside, f"requests outside the deployment: {outside}"


@pytest.mark.charter("C3")
def test_public_page_cookies_first_party_and_secure(
    public_page: str, deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    visit = _visit(public_page, deployment)
    evidence(
        f"{public_page} : cookies "
        + (", ".join(f"{c.name} ({c.domain}, Secure={c.secure})" for c in visit.cookies) or "aucun")
    )
    problems = browser.cookie_problems(visit, deployment.own_names)
    assert not problems, "; ".join(problems)
