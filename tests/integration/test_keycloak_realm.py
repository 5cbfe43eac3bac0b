"""The lab's live Keycloak, reached like users reach it: through nginx, over TLS (C2-C10)."""

from __future__ import annotations

import http.client
import re
import ssl

import pytest
import requests

from educloud.oidc_login import authorization_code_login, jwt_claims

pytestmark = pytest.mark.lab

SOCIAL_PROVIDERS = {
    "google",
    "facebook",
    "github",
    "gitlab",
    "microsoft",
    "apple",
    "twitter",
    "linkedin-openid-connect",
    "instagram",
    "paypal",
    "stackoverflow",
    "openshift-v4",
    "bitbucket",
}
DECOY_SOURCE = "198.18.0.254"  # a lab address outside the admin networks
PKCE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # any valid S256 challenge


def _login(lab_keycloak, username, password):
    return authorization_code_login(
        public_url=lab_keycloak.public_url,
        realm=lab_keycloak.realm,
        client_id=lab_keycloak.client_id,
        client_secret=lab_keycloak.client_secret,
        redirect_uri=lab_keycloak.redirect_uri,
        username=username,
        password=password,
        verify=lab_keycloak.ca_file,
    )


def _authorize(lab_keycloak, **params):
    """GET the realm's authorization endpoint with the lab client, no redirect followed."""
    oidc = f"{lab_keycloak.public_url}/realms/{lab_keycloak.realm}/protocol/openid-connect"
    query = {
        "client_id": lab_keycloak.client_id,
        "redirect_uri": lab_keycloak.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        **params,
    }
    return requests.get(
        f"{oidc}/auth",
        verify=lab_keycloak.ca_file,
        timeout=30,
        allow_redirects=False,
        params=query,
    )


def test_discovery_document_names_the_public_issuer(lab_keycloak):
    url = f"{lab_keycloak.public_url}/realms/{lab_keycloak.realm}/.well-known/openid-configuration"
    document = requests.get(url, verify=lab_keycloak.ca_file, timeout=30).json()
    assert document["issuer"] == f"{lab_keycloak.public_url}/realms/{lab_keycloak.realm}"
    assert document["authorization_endpoint"].startswith(lab_keycloak.public_url + "/")
    assert "S256" in document["code_challenge_methods_supported"]


@pytest.mark.charter("C10")
def test_user_logs_in_with_authorization_code_and_pkce(lab_keycloak, test_user):
    outcome = _login(lab_keycloak, test_user.username, test_user.password)
    assert outcome.ok, f"login failed ({outcome.status}): {outcome.page[:300]}"
    claims = jwt_claims(outcome.tokens["id_token"])
    assert claims["preferred_username"] == test_user.username
    assert claims["iss"] == f"{lab_keycloak.public_url}/realms/{lab_keycloak.realm}"
    assert jwt_claims(outcome.tokens["access_token"])["groups"] == [test_user.group]


def test_client_refuses_a_code_flow_without_pkce(lab_keycloak):
    answer = _authorize(lab_keycloak)
    # Keycloak redirects back with an error instead of showing the login form.
    assert answer.status_code == 302
    assert "error=invalid_request" in answer.headers["Location"]


def test_client_refuses_an_unknown_redirect_uri(lab_keycloak):
    answer = _authorize(
        lab_keycloak,
        redirect_uri="https://cloud.educloud.test/elsewhere",
        code_challenge_method="S256",
        code_challenge=PKCE_CHALLENGE,
    )
    assert answer.status_code == 400


@pytest.mark.charter("C10")
def test_wrong_passwords_lock_the_account(lab_keycloak, kc_admin, test_user):
    realm = kc_admin.get_realm(lab_keycloak.realm)
    for _ in range(realm["failureFactor"]):
        assert not _login(lab_keycloak, test_user.username, "wrong-" + test_user.password).ok
    status = kc_admin.connection.raw_get(
        f"admin/realms/{lab_keycloak.realm}/attack-detection/brute-force/users/{test_user.id}"
    ).json()
    assert status["disabled"] is True
    # Locked: even the right password is refused now.
    assert not _login(lab_keycloak, test_user.username, test_user.password).ok


@pytest.mark.charter("C10")
def test_admin_without_otp_cannot_reach_the_admin_api(lab_keycloak):
    token_url = (
        f"{lab_keycloak.public_url}/realms/{lab_keycloak.realm}/protocol/openid-connect/token"
    )
    answer = requests.post(
        token_url,
        verify=lab_keycloak.ca_file,
        timeout=30,
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": lab_keycloak.realm_admin_user,
            "password": lab_keycloak.realm_admin_password,
        },
    )
    # Keycloak refuses: 400/401, or 500 when the OTP step cannot run for a user who has
    # not configured OTP yet (AuthenticationFlowException in direct-grant-validate-otp).
    assert answer.status_code >= 400
    assert "access_token" not in answer.text


@pytest.mark.charter("C10")
def test_admin_browser_login_demands_otp(lab_keycloak):
    outcome = _login(lab_keycloak, lab_keycloak.realm_admin_user, lab_keycloak.realm_admin_password)
    assert not outcome.ok
    # The password was right: Keycloak moves on to setting up the one-time password.
    assert 'id="kc-otp-settings-form"' in outcome.page or "totp" in outcome.page.lower()


@pytest.mark.charter("C7")
def test_login_and_admin_events_expire_as_the_policy_says(kc_admin, lab_keycloak, retention_policy):
    realm = kc_admin.get_realm(lab_keycloak.realm)
    days = retention_policy["categories"]
    assert realm["eventsEnabled"] is True
    assert realm["eventsExpiration"] == days["login_events"]["retention_days"] * 86400
    assert realm["adminEventsEnabled"] is True
    expected = str(days["admin_events"]["retention_days"] * 86400)
    assert realm["attributes"]["adminEventsExpiration"] == expected


@pytest.mark.charter("C7")
@pytest.mark.parametrize("which", ["tenant", "master"])
def test_offline_sessions_end_as_the_policy_says(kc_admin, lab_keycloak, retention_policy, which):
    realm = kc_admin.get_realm(lab_keycloak.realm if which == "tenant" else "master")
    rule = retention_policy["categories"]["offline_sessions"]
    assert realm["offlineSessionMaxLifespanEnabled"] is True
    assert realm["offlineSessionMaxLifespan"] == rule["retention_days"] * 86400
    assert realm["offlineSessionIdleTimeout"] == rule["idle_days"] * 86400


@pytest.mark.charter("C2", "C5")
def test_no_social_identity_provider(kc_admin):
    providers = kc_admin.get_idps()
    assert not [p["alias"] for p in providers if p["providerId"] in SOCIAL_PROVIDERS]


@pytest.mark.charter("C4")
def test_user_profile_keeps_only_the_listed_attributes(kc_admin, lab_keycloak):
    profile = kc_admin.connection.raw_get(f"admin/realms/{lab_keycloak.realm}/users/profile").json()
    names = {attribute["name"] for attribute in profile["attributes"]}
    # The role's default list: identity, plus the four attributes of the accounts policy (C4).
    assert names == {
        "username",
        "email",
        "firstName",
        "lastName",
        "educloud_profile",
        "educloud_login",
        "educloud_end_date",
        "educloud_departed_on",
    }
    assert profile.get("unmanagedAttributePolicy") in (None, "")


def test_realm_speaks_french_and_refuses_self_registration(kc_admin, lab_keycloak):
    realm = kc_admin.get_realm(lab_keycloak.realm)
    assert realm["defaultLocale"] == "fr"
    assert realm["registrationAllowed"] is False
    assert realm["bruteForceProtected"] is True
    assert "length(12)" in realm["passwordPolicy"]
    assert "notUsername" in realm["passwordPolicy"]
    assert "passwordHistory" in realm["passwordPolicy"]


def _status_from(source: str, host: str, path: str, lab_keycloak) -> int:
    """GET over TLS from a chosen source address (the host side has several lab addresses)."""
    context = ssl.create_default_context(cafile=lab_keycloak.ca_file)
    # The name resolves to the proxy's lab address (pinned by the lab_keycloak fixture).
    connection = http.client.HTTPSConnection(
        host, 443, context=context, source_address=(source, 0), timeout=30
    )
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.charter("C10")
def test_admin_console_refused_from_a_non_admin_address(lab_keycloak):
    admin_host = lab_keycloak.admin_url.split("//", 1)[1]
    assert _status_from(DECOY_SOURCE, admin_host, "/admin/master/console/", lab_keycloak) == 403


@pytest.mark.charter("C10")
def test_admin_console_answers_the_admin_network(lab_keycloak):
    admin_host = lab_keycloak.admin_url.split("//", 1)[1]
    assert _status_from("198.18.0.1", admin_host, "/admin/master/console/", lab_keycloak) == 200


@pytest.mark.charter("C10")
def test_public_vhost_never_serves_the_admin_api(lab_keycloak):
    public_host = lab_keycloak.public_url.split("//", 1)[1]
    # 404: the public site forwards only its allowed paths (the tenant realm, the themes).
    for path in ("/admin/master/console/", "/admin/realms/lab/users", "/metrics", "/health"):
        assert _status_from("198.18.0.1", public_host, path, lab_keycloak) == 404, path


@pytest.mark.charter("C3")
def test_login_page_loads_nothing_from_another_origin(lab_keycloak):
    page = _authorize(lab_keycloak, code_challenge_method="S256", code_challenge=PKCE_CHALLENGE)
    assert page.status_code == 200
    assert 'lang="fr"' in page.text
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references, "the login page references no resource at all"
    foreign = [
        ref
        for ref in references
        if ref.startswith(("http://", "https://", "//"))
        and not ref.startswith(lab_keycloak.public_url + "/")
    ]
    assert foreign == []
