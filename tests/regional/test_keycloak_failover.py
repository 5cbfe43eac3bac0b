"""Keycloak's cluster behind HAProxy: a login outlives the node that served it (issue #9)."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from tests.keycloak_lab import LabKeycloak, TestUser

from educloud.oidc_login import form_action, pkce_pair
from educloud.regional import haproxy
from educloud.regional.topology import Regional
from educloud.remote import call

pytestmark = pytest.mark.regional
BACKEND = "keycloak"


def _wait_for_status(regional: Regional, server: str, wanted: str, timeout: float) -> float:
    """Seconds until HAProxy's check shows `server` in `wanted` (UP or DOWN)."""
    start = time.monotonic()
    while True:
        status = haproxy.servers(regional.load_balancer, BACKEND)[server].status
        if status == wanted:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"HAProxy shows {server} {status}, not {wanted}, after {timeout:.0f} s")
        time.sleep(1)


def _refresh(kc: LabKeycloak, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{kc.public_url}/realms/{kc.realm}/protocol/openid-connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(kc.client_id, kc.client_secret),
        verify=kc.ca_file,
        timeout=30,
    )


def test_both_nodes_are_in_service(regional: Regional) -> None:
    states = haproxy.servers(regional.load_balancer, BACKEND)
    assert sorted(states) == sorted(n.name for n in regional.keycloak_nodes)
    assert all(s.up for s in states.values()), states


def _begin_login(kc: LabKeycloak, session: requests.Session) -> tuple[str, str, str]:
    """The authorization request: Keycloak opens an authentication session and shows its
    login form. Returns the form's action, the PKCE verifier and the state."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    page = session.get(
        f"{kc.public_url}/realms/{kc.realm}/protocol/openid-connect/auth",
        params={
            "client_id": kc.client_id,
            "redirect_uri": kc.redirect_uri,
            "response_type": "code",
            "scope": "openid",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        verify=kc.ca_file,
        timeout=30,
    )
    action = form_action(page.text)
    assert page.status_code == 200 and action, f"no login form ({page.status_code})"
    return action, verifier, state


def _finish_login(
    kc: LabKeycloak, session: requests.Session, action: str, verifier: str, user: TestUser
) -> dict[str, str]:
    """The password, then the code exchanged for tokens, as the application would."""
    answer = session.post(
        action,
        data={"username": user.username, "password": user.password, "credentialId": ""},
        allow_redirects=False,
        verify=kc.ca_file,
        timeout=30,
    )
    location = answer.headers.get("Location", "")
    assert answer.status_code == 302 and location.startswith(kc.redirect_uri), (
        f"the login did not finish ({answer.status_code}): {answer.text[:300]}"
    )
    code = parse_qs(urlparse(location).query)["code"][0]
    token = requests.post(
        f"{kc.public_url}/realms/{kc.realm}/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": kc.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(kc.client_id, kc.client_secret),
        verify=kc.ca_file,
        timeout=30,
    )
    assert token.status_code == 200, token.text[:300]
    tokens: dict[str, str] = token.json()
    return tokens


def test_a_login_outlives_the_node_that_started_it(
    regional: Regional,
    regional_keycloak: LabKeycloak,
    regional_user: TestUser,
    record_measurement,
) -> None:
    """The login form comes from one node; that node stops; the password typed into the
    form is accepted by the other node, and the session then lives on there. The
    authentication session exists only in Keycloak's distributed cache (not in the
    database): this passes only when the nodes form one cluster."""
    kc, lb = regional_keycloak, regional.load_balancer
    served, other = regional.keycloak_nodes[0], regional.keycloak_nodes[1]
    browser = requests.Session()
    # The form is served by `served` alone: the other node is out of rotation meanwhile.
    haproxy.set_state(lb, BACKEND, other.name, "maint")
    try:
        before = haproxy.servers(lb, BACKEND)[served.name].sessions_total
        action, verifier, _ = _begin_login(kc, browser)
        assert haproxy.servers(lb, BACKEND)[served.name].sessions_total > before
    finally:
        haproxy.set_state(lb, BACKEND, other.name, "ready")
    _wait_for_status(regional, other.name, "UP", 60)

    stopped = call(served, ["systemctl", "stop", "keycloak"], timeout=120)
    assert stopped.returncode == 0, stopped.said()
    try:
        marked_down = _wait_for_status(regional, served.name, "DOWN", 30)
        tokens = _finish_login(kc, browser, action, verifier, regional_user)
        # The session lives on: the other node refreshes its tokens and answers userinfo.
        refreshed = _refresh(kc, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text[:300]
        userinfo = requests.get(
            f"{kc.public_url}/realms/{kc.realm}/protocol/openid-connect/userinfo",
            headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
            verify=kc.ca_file,
            timeout=30,
        )
        assert userinfo.status_code == 200, userinfo.text[:300]
        assert userinfo.json()["preferred_username"] == regional_user.username
        record_measurement(
            "keycloak_node_loss",
            {
                "form_served_by": served.name,
                "login_finished_by": other.name,
                "marked_down_after_s": round(marked_down, 1),
                "refresh_status": refreshed.status_code,
            },
        )
    finally:
        started = call(served, ["systemctl", "start", "keycloak"], timeout=120)
        assert started.returncode == 0, started.said()
        _wait_for_status(regional, served.name, "UP", 300)
