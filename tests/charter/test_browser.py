"""Every page, loaded in headless Chromium, contacts only the deployment (C3).

Public pages are loaded without an account; then a throwaway user of each realm signs in
through Keycloak and the account console and every public site's first page are loaded in
the same browser. A page must answer (no error status), contact only the deployment's
names (requests, WebSockets, workers, and even loads its CSP refused) and set only
first-party Secure cookies.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from keycloak import KeycloakAdmin

from educloud.charter import browser, nextcloud
from educloud.deployment.model import Deployment

_visits: dict[str, browser.PageVisit] = {}


def _visit(url: str, deployment: Deployment) -> browser.PageVisit:
    if url not in _visits:
        (_visits[url],) = browser.visit_pages([url], deployment.pins())
    return _visits[url]


def _missing_nextcloud(
    url: str, deployment: Deployment, nextcloud_installed: Callable[[str], bool]
) -> bool:
    """A page Nextcloud would serve on a host where it is rightly not installed (the pages
    nginx serves itself, the privacy notice and the report form, are always there); a half
    install fails the check (the nextcloud_installed fixture)."""
    parts = urlsplit(url)
    if parts.path in {deployment.privacy_path, deployment.reporting_path}:
        return False
    for host in deployment.in_group("nextcloud"):
        if host.variables.get("nextcloud_hostname") == parts.hostname and not nextcloud_installed(
            host.name
        ):
            return True
    return False


def _shown(visit: browser.PageVisit) -> str:
    refused = f" ; refusées par la CSP : {', '.join(visit.refused_by_csp)}"
    return (
        f"{visit.url} -> {visit.status or 'aucune réponse'} ({visit.final_url}), "
        f"{len(visit.requested)} requêtes ; origines contactées : {', '.join(visit.origins)}"
        + (refused if visit.refused_by_csp else "")
    )


@pytest.mark.charter("C3")
def test_public_page_contacts_only_the_deployment(
    public_page: str,
    deployment: Deployment,
    nextcloud_installed: Callable[[str], bool],
    evidence: Callable[[str], None],
) -> None:
    if _missing_nextcloud(public_page, deployment, nextcloud_installed):
        pytest.skip(nextcloud.NOT_INSTALLED)
    visit = _visit(public_page, deployment)
    evidence(_shown(visit))
    assert not browser.status_problems(visit), "; ".join(browser.status_problems(visit))
    outside = browser.third_party_requests(visit, deployment.own_names)
    assert not outside, f"requests outside the deployment: {outside}"


@pytest.mark.charter("C3")
def test_public_page_cookies_first_party_and_secure(
    public_page: str,
    deployment: Deployment,
    nextcloud_installed: Callable[[str], bool],
    evidence: Callable[[str], None],
) -> None:
    if _missing_nextcloud(public_page, deployment, nextcloud_installed):
        pytest.skip(nextcloud.NOT_INSTALLED)
    visit = _visit(public_page, deployment)
    evidence(
        f"{public_page} : cookies "
        + (", ".join(f"{c.name} ({c.domain}, Secure={c.secure})" for c in visit.cookies) or "aucun")
    )
    problems = browser.cookie_problems(visit, deployment.own_names)
    assert not problems, "; ".join(problems)


@contextmanager
def _throwaway_user(kc_admin: KeycloakAdmin, realm: str) -> Iterator[tuple[str, str]]:
    """An ordinary user of the realm (no role, no group, nothing left to do at sign-in),
    with a random password any reasonable policy accepts; deleted afterwards."""
    username = f"verification-c3-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24) + "aA1!"
    kc_admin.change_current_realm(realm)
    user_id = kc_admin.create_user(
        {
            "username": username,
            "email": f"{username}@verification.invalid",
            "firstName": "Vérification",
            "lastName": "Charte",
            "enabled": True,
            "emailVerified": True,
            "requiredActions": [],
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    try:
        yield username, password
    finally:
        kc_admin.change_current_realm(realm)
        kc_admin.delete_user(user_id)


@pytest.mark.charter("C3")
def test_signed_in_pages_contact_only_the_deployment(
    realm: str,
    deployment: Deployment,
    kc_admin: KeycloakAdmin,
    nextcloud_installed: Callable[[str], bool],
    evidence: Callable[[str], None],
) -> None:
    account = f"{deployment.keycloak_url.rstrip('/')}/realms/{realm}/account/"
    # Keycloak's own site: its first page after login is the account console, loaded above
    # (its root only redirects to the admin console, which the public site refuses).
    keycloak = urlsplit(deployment.keycloak_url).hostname
    first_pages = [f"https://{s.name}/" for s in deployment.public_sites if s.name != keycloak]
    skipped = [
        url for url in first_pages if _missing_nextcloud(url, deployment, nextcloud_installed)
    ]
    with _throwaway_user(kc_admin, realm) as (username, password):
        visits = browser.visit_signed_in(
            account,
            username,
            password,
            [url for url in first_pages if url not in skipped],
            deployment.pins(),
        )
    steps = ["connexion", "espace compte après connexion"] + ["première page"] * len(visits)
    lines = [f"utilisateur jetable {username} du royaume {realm} :"]
    lines += [
        f"{step} : {_shown(visit)} ; cookies : "
        + ", ".join(f"{c.name} ({c.domain}, Secure={c.secure})" for c in visit.cookies)
        for step, visit in zip(steps, visits, strict=False)
    ]
    if skipped:
        lines.append(f"non chargées (Nextcloud non installé) : {', '.join(skipped)}")
    evidence("\n".join(lines))
    problems = [p for visit in visits for p in browser.page_problems(visit, deployment.own_names)]
    assert not problems, "; ".join(problems)
