"""Keycloak realm settings read from the admin API, and its login page (C4 C6 C7 C10 C12)."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
import requests
from keycloak import KeycloakAdmin

from educloud.charter import keycloak as kc
from educloud.charter.deployment import Deployment
from educloud.oidc_login import pkce_pair
from educloud.policy import Policies

_LINK = re.compile(r'<a\s[^>]*\bhref="([^"]*)"', re.IGNORECASE)


@pytest.fixture(scope="session")
def kc_admin(
    deployment: Deployment, connect: Callable[[str], Any], ca_bundle: str
) -> KeycloakAdmin:
    hosts = deployment.in_group("keycloak")
    if not hosts or not deployment.keycloak_admin_url:
        pytest.skip("no Keycloak host in the inventory")
    # Ansible resolves the (vaulted) variable in memory; it is never printed.
    answer = connect(hosts[0].name).ansible(
        "ansible.builtin.debug", "msg={{ keycloak_admin_password }}", check=False
    )
    admin = KeycloakAdmin(
        server_url=deployment.keycloak_admin_url,
        username=str(hosts[0].variables.get("keycloak_admin_user", "admin")),
        password=answer["msg"],
        realm_name="master",
        user_realm_name="master",
        verify=ca_bundle,
    )
    return admin


def _realm(kc_admin: KeycloakAdmin, realm: str) -> dict[str, Any]:
    representation: dict[str, Any] = kc_admin.get_realm(realm)
    return representation


@pytest.mark.charter("C4", "C12")
def test_event_listeners_are_local(
    realm: str, kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    settings = _realm(kc_admin, realm)
    evidence(f"royaume {realm} : eventsListeners = {settings.get('eventsListeners')}")
    problems = kc.event_listener_problems(settings)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C4")
def test_no_third_party_identity_provider(
    realm: str, kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    kc_admin.change_current_realm(realm)
    providers = kc_admin.get_idps()
    evidence(
        f"royaume {realm} : fournisseurs d'identité "
        + (", ".join(f"{p.get('alias')} ({p.get('providerId')})" for p in providers) or "aucun")
    )
    problems = kc.identity_provider_problems(providers)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_login_events_expiration(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    days = int(policies.retention["login_events"]["retention_days"])
    settings = _realm(kc_admin, realm)
    evidence(
        f"royaume {realm} : eventsEnabled {settings.get('eventsEnabled')}, eventsExpiration "
        f"{settings.get('eventsExpiration')} s (politique : {days} jours)"
    )
    problems = kc.events_expiration_problems(settings, days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_admin_events_expiration(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    days = int(policies.retention["admin_events"]["retention_days"])
    settings = _realm(kc_admin, realm)
    expiration = (settings.get("attributes") or {}).get("adminEventsExpiration")
    evidence(
        f"royaume {realm} : adminEventsEnabled {settings.get('adminEventsEnabled')}, "
        f"adminEventsExpiration {expiration} s (politique : {days} jours)"
    )
    problems = kc.admin_events_expiration_problems(settings, days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_brute_force_protection(
    realm: str, kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    settings = _realm(kc_admin, realm)
    evidence(
        f"royaume {realm} : bruteForceProtected {settings.get('bruteForceProtected')}, "
        f"failureFactor {settings.get('failureFactor')}"
    )
    problems = kc.brute_force_problems(settings)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_admin_requires_otp(
    realm: str, kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    settings = _realm(kc_admin, realm)
    flow = settings.get("browserFlow", "browser")
    kc_admin.change_current_realm(realm)
    executions = kc_admin.get_authentication_flow_executions(flow)
    evidence(
        f"royaume {realm} : flux de connexion {flow} : "
        + ", ".join(f"{e.get('displayName')} {e.get('requirement')}" for e in executions)
    )
    problems = kc.admin_otp_problems(executions)
    assert not problems, "; ".join(problems)


def _login_page(deployment: Deployment, realm: str, ca_bundle: str) -> requests.Response:
    """The realm's login page, as the account console's sign-in shows it (with PKCE)."""
    base = deployment.keycloak_url.rstrip("/")
    _, challenge = pkce_pair()
    query = urlencode(
        {
            "client_id": "account-console",
            "redirect_uri": f"{base}/realms/{realm}/account/",
            "response_type": "code",
            "scope": "openid",
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return requests.get(
        f"{base}/realms/{realm}/protocol/openid-connect/auth?{query}",
        verify=ca_bundle,
        timeout=15,
        allow_redirects=False,
    )


@pytest.mark.charter("C6")
def test_login_page_links_to_the_privacy_notice(
    realm: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    if not deployment.keycloak_url:
        pytest.skip("no Keycloak host in the inventory")
    page = _login_page(deployment, realm, ca_bundle)
    links = [html.unescape(href) for href in _LINK.findall(page.text)]
    notices = [
        link
        for link in links
        if urlparse(link).scheme == "https"
        and urlparse(link).hostname in deployment.own_names
        and urlparse(link).path == deployment.privacy_path
    ]
    evidence(
        f"royaume {realm} : page de connexion -> {page.status_code}, liens vers la notice : "
        + (", ".join(notices) or "aucun")
    )
    assert page.status_code == 200, f"no login page for realm {realm}"
    assert notices, (
        f"the login page links to no privacy notice at https://<site>{deployment.privacy_path} "
        f"on the platform; its links: {links or 'none'}"
    )
