"""Keycloak realm settings read from the admin API, its events, and its login observed
(C2 C4 C5 C6 C7 C10 C12)."""

from __future__ import annotations

import functools
import html
import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlparse

import pytest
import requests
from keycloak import KeycloakAdmin

from educloud.charter import keycloak as kc
from educloud.deployment.model import Deployment
from educloud.oidc_login import form_action, pkce_pair
from educloud.policy import Policies

_LINK = re.compile(r'<a\s[^>]*\bhref="([^"]*)"', re.IGNORECASE)
DEFAULT_ADMIN_ROLE = "educloud-admin"  # the keycloak role's default (keycloak_realm_admin_role)
_FRENCH_BINDINGS = {"browser": "de connexion (navigateur)", "direct_grant": "d'accès direct"}


@functools.cache
def _get(kc_admin: KeycloakAdmin, path: str, **params: Any) -> Any:
    answer = kc_admin.connection.raw_get(path, **params)
    if answer.status_code != 200:
        pytest.fail(f"Keycloak's admin API answered {answer.status_code} to GET {path}")
    return answer.json()


def _realm(kc_admin: KeycloakAdmin, realm: str) -> dict[str, Any]:
    representation: dict[str, Any] = kc_admin.get_realm(realm)
    return representation


def _keycloak_variables(deployment: Deployment) -> dict[str, Any]:
    hosts = deployment.in_group("keycloak")
    return hosts[0].variables if hosts else {}


@pytest.mark.charter("C4", "C12")
def test_event_listeners_are_local(
    realm: str, kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    settings = _realm(kc_admin, realm)
    evidence(f"royaume {realm} : eventsListeners = {settings.get('eventsListeners')}")
    problems = kc.event_listener_problems(settings)
    assert not problems, "; ".join(problems)


# --- Identity providers (C2, C4, C5) --------------------------------------------------------


def _identity_providers(kc_admin: KeycloakAdmin, realm: str) -> list[dict[str, Any]]:
    """Every identity provider of the realm (the admin API pages them by 100)."""
    providers: list[dict[str, Any]] = []
    while True:
        page = _get(
            kc_admin,
            f"admin/realms/{quote(realm, safe='')}/identity-provider/instances",
            first=len(providers),
            max=100,
        )
        providers += page
        if len(page) < 100:
            return providers


def _french_provider(provider: dict[str, Any]) -> str:
    state = "activé" if provider.get("enabled", True) else "désactivé"
    hosts = sorted(
        {kc.url_host(url) or url for _, url in kc.config_urls(provider.get("config") or {})}
    )
    return (
        f"{provider.get('alias')} ({provider.get('providerId')}, {state}, hôtes : "
        + (", ".join(hosts) or "aucun")
        + ")"
    )


@pytest.mark.charter("C2", "C4", "C5")
def test_identity_providers_declared(
    idp_realm: str,
    kc_admin: KeycloakAdmin,
    deployment: Deployment,
    evidence: Callable[[str], None],
) -> None:
    declared = kc.declared_identity_providers(
        _keycloak_variables(deployment).get("keycloak_realms")
    )
    realms = [idp_realm]
    if idp_realm == "master":
        on_server = [r["realm"] for r in _get(kc_admin, "admin/realms", briefRepresentation="true")]
        undeclared = [r for r in on_server if r not in deployment.realms and r != "master"]
        evidence(
            "royaumes présents sur le serveur et absents de l'inventaire : "
            + (", ".join(undeclared) or "aucun")
            + " (leurs fournisseurs sont vérifiés ici, comme ceux de master)"
        )
        realms += undeclared
    problems = []
    for name in realms:
        allowed = declared.get(name, ()) if name in deployment.realms else ()
        providers = _identity_providers(kc_admin, name)
        evidence(
            f"royaume {name} : fournisseurs d'identité sur le serveur : "
            + ("; ".join(_french_provider(p) for p in providers) or "aucun")
            + " ; déclarés dans l'inventaire : "
            + (
                "; ".join(
                    f"{d.alias} ({d.provider_id}, hôtes : {', '.join(sorted(d.hosts)) or 'aucun'})"
                    for d in allowed
                )
                or "aucun"
            )
        )
        for d in allowed:
            if d.templated or not d.matchable:
                evidence(
                    f"royaume {name} : le fournisseur {d.alias} de l'inventaire a des valeurs "
                    f"en gabarit Jinja ({', '.join(d.templated) or 'alias ou type'}) : "
                    "leurs hôtes sont inconnus ici et ne sont pas approuvés"
                )
        problems += kc.identity_provider_problems(name, providers, allowed)
    assert not problems, "; ".join(problems)


# --- Retention of events (C7) ---------------------------------------------------------------


@pytest.mark.charter("C7")
def test_login_events_expiration(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    days = int(policies.retention["login_events"]["retention_days"])
    settings = _realm(kc_admin, realm)
    evidence(
        f"royaume {realm} : eventsEnabled {settings.get('eventsEnabled')}, eventsExpiration "
        f"{settings.get('eventsExpiration')} s (politique : {days} jours) ; réglage lu"
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
        f"adminEventsExpiration {expiration} s (politique : {days} jours) ; réglage lu"
    )
    problems = kc.admin_events_expiration_problems(settings, days)
    assert not problems, "; ".join(problems)


def _old_events(
    kc_admin: KeycloakAdmin, realm: str, endpoint: str, days: int, evidence: Callable[[str], None]
) -> tuple[list[dict[str, Any]], datetime]:
    """The oldest event Keycloak returns from before the policy's period (and the grace)."""
    cutoff = kc.retention_cutoff(datetime.now(UTC), days)
    path = f"admin/realms/{quote(realm, safe='')}/{endpoint}"
    # dateTo takes milliseconds too; ascending order gives the oldest first.
    events: list[dict[str, Any]] = _get(
        kc_admin, path, dateTo=int(cutoff.timestamp() * 1000), direction="asc", max=1
    )
    evidence(
        f"royaume {realm} : GET /{path}?dateTo={cutoff:%Y-%m-%d %H:%M} UTC&direction=asc&max=1 "
        f"-> {len(events)} événement(s) antérieur(s) à {days} jours + 1 jour de marge"
        " (comportement observé)"
    )
    return events, cutoff


@pytest.mark.charter("C7")
def test_login_events_older_than_policy_are_gone(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    days = int(policies.retention["login_events"]["retention_days"])
    events, cutoff = _old_events(kc_admin, realm, "events", days, evidence)
    problems = kc.old_event_problems(f"login events of realm {realm}", events, cutoff, days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_admin_events_older_than_policy_are_gone(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    days = int(policies.retention["admin_events"]["retention_days"])
    events, cutoff = _old_events(kc_admin, realm, "admin-events", days, evidence)
    problems = kc.old_event_problems(f"admin events of realm {realm}", events, cutoff, days)
    assert not problems, "; ".join(problems)


# --- Security (C10) -------------------------------------------------------------------------


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


def _admin_role(deployment: Deployment) -> str:
    role = _keycloak_variables(deployment).get("keycloak_realm_admin_role", DEFAULT_ADMIN_ROLE)
    if kc.is_templated(role) or not isinstance(role, str):
        pytest.skip(
            "keycloak_realm_admin_role est un gabarit Jinja dans l'inventaire : "
            "le rôle des administrateurs est inconnu ici"
        )
    return role


def _otp_flow_problems(
    kc_admin: KeycloakAdmin, realm: str, admin_role: str, evidence: Callable[[str], None]
) -> list[str]:
    """Every flow a login of the realm can run asks the admin role's holders for OTP."""
    base = f"admin/realms/{quote(realm, safe='')}"
    settings = _realm(kc_admin, realm)
    clients = _get(kc_admin, f"{base}/clients")
    flows = _get(kc_admin, f"{base}/authentication/flows")
    bindings, problems = kc.flow_bindings(settings, clients, flows)
    for binding in bindings:
        executions = _get(
            kc_admin, f"{base}/authentication/flows/{quote(binding.flow, safe='')}/executions"
        )
        configs = {
            str(e["authenticationConfig"]): _get(
                kc_admin, f"{base}/authentication/config/{e['authenticationConfig']}"
            )
            for e in executions
            if e.get("authenticationConfig")
        }
        evidence(
            f"{binding.french} : flux {_FRENCH_BINDINGS[binding.binding]} "
            f"« {binding.flow} » (réglage lu) : {kc.describe_flow(executions)}"
        )
        problems += kc.admin_otp_problems(binding, executions, configs, admin_role)
    return problems


@pytest.mark.charter("C10")
def test_admin_requires_otp(
    realm: str, kc_admin: KeycloakAdmin, deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    problems = _otp_flow_problems(kc_admin, realm, _admin_role(deployment), evidence)
    assert not problems, "; ".join(problems)


@dataclass
class _BrowserAttempt:
    """Where a browser's login ended: a page of Keycloak's, or a redirect out of it."""

    status: int
    page: str = ""
    redirected_to: str = ""
    cookies: set[str] = field(default_factory=set)

    @property
    def got_code(self) -> bool:
        return "code" in parse_qs(urlparse(self.redirected_to).query)

    def french(self) -> str:
        if self.redirected_to:
            code = "avec un code d'autorisation" if self.got_code else "sans code"
            return f"redirection vers {self.redirected_to.split('?')[0]} {code}"
        kind = {"otp": "formulaire OTP", "otp-setup": "page de configuration de l'OTP"}
        return f"HTTP {self.status}, " + kind.get(kc.otp_page(self.page) or "", "autre page")


def _browser_login(
    public_url: str,
    realm: str,
    client_id: str,
    redirect_uri: str,
    user: _Throwaway,
    ca_bundle: str,
) -> _BrowserAttempt:
    """Authorization code with PKCE, as a browser: Keycloak's own redirects are followed,
    the one to the application is not."""
    session = requests.Session()
    _, challenge = pkce_pair()
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid",
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    oidc = f"{public_url.rstrip('/')}/realms/{quote(realm, safe='')}/protocol/openid-connect"
    page = session.get(f"{oidc}/auth?{query}", verify=ca_bundle, timeout=15)
    action = form_action(page.text)
    if page.status_code != 200 or action is None:
        return _BrowserAttempt(page.status_code, page.text)
    answer = session.post(
        action,
        data={"username": user.username, "password": user.password, "credentialId": ""},
        allow_redirects=False,
        verify=ca_bundle,
        timeout=15,
    )
    for _ in range(10):
        if not answer.is_redirect:
            break
        location = urljoin(answer.url, answer.headers["Location"])
        # The account console's redirect URI is itself under /realms/: test it first.
        if location.startswith(redirect_uri) or not location.startswith(
            public_url.rstrip("/") + "/realms/"
        ):
            return _BrowserAttempt(answer.status_code, redirected_to=location)
        answer = session.get(location, allow_redirects=False, verify=ca_bundle, timeout=15)
    return _BrowserAttempt(answer.status_code, answer.text, cookies=set(session.cookies.keys()))


def _password_grant(
    public_url: str, realm: str, client: dict[str, Any], secret: str | None, user: _Throwaway
) -> requests.Response:
    data = {
        "grant_type": "password",
        "client_id": str(client["clientId"]),
        "username": user.username,
        "password": user.password,
        "scope": "openid",
    }
    if secret is not None:
        data["client_secret"] = secret
    return requests.post(
        f"{public_url.rstrip('/')}/realms/{quote(realm, safe='')}/protocol/openid-connect/token",
        data=data,
        verify=user.ca_bundle,
        timeout=15,
    )


def _token_issued(answer: requests.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("access_token") or body.get("id_token"))


@dataclass(frozen=True)
class _Throwaway:
    id: str
    username: str
    password: str
    ca_bundle: str


@contextmanager
def _throwaway_user(kc_admin: KeycloakAdmin, realm: str, ca_bundle: str) -> Iterator[_Throwaway]:
    """A user with a strong password, no OTP and no required action; deleted afterwards."""
    username = f"charter-otp-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24) + "aA1!"
    answer = kc_admin.connection.raw_post(
        f"admin/realms/{quote(realm, safe='')}/users",
        data=json.dumps(
            {
                "username": username,
                "email": f"{username}@charter.invalid",
                "firstName": "Verification",
                "lastName": "Charte",
                "enabled": True,
                "emailVerified": True,
                "requiredActions": [],
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            }
        ),
    )
    if answer.status_code != 201:
        pytest.fail(f"Keycloak refused the throwaway user ({answer.status_code}): {answer.text}")
    user_id = answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    try:
        yield _Throwaway(user_id, username, password, ca_bundle)
    finally:
        kc_admin.connection.raw_delete(f"admin/realms/{quote(realm, safe='')}/users/{user_id}")


@contextmanager
def _direct_grant_clients(
    kc_admin: KeycloakAdmin, realm: str, clients: list[dict[str, Any]]
) -> Iterator[list[tuple[dict[str, Any], str | None]]]:
    """The clients a password grant can use (with their secrets), or a throwaway public one."""
    base = f"admin/realms/{quote(realm, safe='')}/clients"
    usable: list[tuple[dict[str, Any], str | None]] = []
    for client in clients:
        if not client.get("directAccessGrantsEnabled") or not client.get("enabled", True):
            continue
        if client.get("bearerOnly"):
            continue
        if client.get("publicClient"):
            usable.append((client, None))
        elif client.get("clientAuthenticatorType", "client-secret") == "client-secret":
            secret = _get(kc_admin, f"{base}/{client['id']}/client-secret").get("value")
            usable.append((client, str(secret)))
    created = None
    if not usable:
        client_id = f"charter-otp-{secrets.token_hex(4)}"
        answer = kc_admin.connection.raw_post(
            base,
            data=json.dumps(
                {
                    "clientId": client_id,
                    "protocol": "openid-connect",
                    "publicClient": True,
                    "directAccessGrantsEnabled": True,
                    "standardFlowEnabled": False,
                }
            ),
        )
        if answer.status_code != 201:
            pytest.fail(f"Keycloak refused the throwaway client ({answer.status_code})")
        created = answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        usable.append(({"id": created, "clientId": client_id, "publicClient": True}, None))
    try:
        yield usable
    finally:
        if created is not None:
            kc_admin.connection.raw_delete(f"{base}/{created}")


def _browser_problems(
    attempt: _BrowserAttempt, realm: str, admin_role: str, client_id: str
) -> list[str]:
    """An administrator without OTP must end on an OTP page: no code, no session cookie."""
    who = f"realm {realm}: a holder of {admin_role} without OTP"
    if attempt.got_code:
        return [f"{who} logged in through the browser ({client_id}): redirected with a code"]
    if "KEYCLOAK_IDENTITY" in attempt.cookies:
        return [f"{who} got a Keycloak session cookie through the browser ({client_id})"]
    if not kc.otp_page(attempt.page):
        return [
            f"{who}: the browser login ({client_id}) did not end on an OTP form or OTP setup "
            f"page ({attempt.french()})"
        ]
    return []


def _admin_post(kc_admin: KeycloakAdmin, path: str, body: object) -> None:
    answer = kc_admin.connection.raw_post(path, data=json.dumps(body))
    if answer.status_code >= 300:
        pytest.fail(f"Keycloak's admin API answered {answer.status_code} to POST {path}")


@pytest.mark.charter("C10")
def test_admin_without_otp_gets_no_token(
    realm: str,
    kc_admin: KeycloakAdmin,
    deployment: Deployment,
    ca_bundle: str,
    evidence: Callable[[str], None],
) -> None:
    """A throwaway holder of the admin role, with the right password and no OTP, gets
    neither a token (password grant, with every client that allows it) nor a session
    (browser login, with the account console and every client overriding its flow)."""
    if not deployment.keycloak_url:
        pytest.skip("aucun hôte Keycloak dans l'inventaire")
    admin_role = _admin_role(deployment)
    public = deployment.keycloak_url
    base = f"admin/realms/{quote(realm, safe='')}"
    role = _get(kc_admin, f"{base}/roles/{quote(admin_role, safe='')}")
    clients = _get(kc_admin, f"{base}/clients")
    browser_clients = [(f"{public.rstrip('/')}/realms/{realm}/account/", "account-console")]
    for client in clients:
        # A client that overrides the browser flow runs its own: log in through it too.
        overridden = (client.get("authenticationFlowBindingOverrides") or {}).get("browser")
        uri = kc.login_redirect_uri(client, public)
        if overridden and uri and client.get("standardFlowEnabled", True):
            browser_clients.append((uri, str(client["clientId"])))
    problems: list[str] = []
    with (
        _throwaway_user(kc_admin, realm, ca_bundle) as user,
        _direct_grant_clients(kc_admin, realm, clients) as grant_clients,
    ):
        # Control, before the role: the same password does open a session, so a refusal
        # below comes from the role's second factor, not from a wrong password.
        control_grant = _password_grant(public, realm, *grant_clients[0], user)
        control_browser = _browser_login(
            public, realm, "account-console", browser_clients[0][0], user, ca_bundle
        )
        evidence(
            f"royaume {realm} : utilisateur jetable {user.username}, mot de passe fort, sans OTP "
            f"ni action requise ; témoin sans le rôle {admin_role} : mot de passe "
            f"({grant_clients[0][0]['clientId']}) -> HTTP {control_grant.status_code}, "
            + ("jeton délivré" if _token_issued(control_grant) else "pas de jeton")
            + f" ; navigateur (account-console) -> {control_browser.french()}"
        )
        if not (_token_issued(control_grant) and control_browser.got_code):
            evidence(
                "le témoin n'a pas abouti : les refus ci-dessous ne montrent pas à eux seuls "
                "que la condition porte sur le rôle"
            )
        _admin_post(kc_admin, f"{base}/users/{user.id}/logout", {})
        _admin_post(kc_admin, f"{base}/users/{user.id}/role-mappings/realm", [role])
        for redirect_uri, client_id in browser_clients:
            attempt = _browser_login(public, realm, client_id, redirect_uri, user, ca_bundle)
            evidence(
                f"avec le rôle {admin_role} : connexion navigateur ({client_id}) -> "
                f"{attempt.french()} (comportement observé)"
            )
            problems += _browser_problems(attempt, realm, admin_role, client_id)
        for client, secret in grant_clients:
            # Each refusal counts as a failed login: never let the lockout answer instead.
            kc_admin.connection.raw_delete(f"{base}/attack-detection/brute-force/users/{user.id}")
            answer = _password_grant(public, realm, client, secret, user)
            evidence(
                f"avec le rôle {admin_role} : mot de passe seul ({client['clientId']}) -> "
                f"HTTP {answer.status_code}, "
                + ("jeton délivré" if _token_issued(answer) else "pas de jeton")
                + " (comportement observé)"
            )
            if _token_issued(answer):
                problems.append(
                    f"realm {realm}: a holder of {admin_role} without OTP got a token by "
                    f"password grant through client {client['clientId']}"
                )
        sessions = _get(kc_admin, f"{base}/users/{user.id}/sessions")
        evidence(f"sessions Keycloak de l'utilisateur jetable après ces essais : {len(sessions)}")
        if sessions:
            problems.append(
                f"realm {realm}: a holder of {admin_role} without OTP has "
                f"{len(sessions)} Keycloak session(s)"
            )
    assert not problems, "; ".join(problems)


# --- The master realm: the platform's administrators, nobody else (C7 C10) ------------------

MASTER = "master"
# Settings that make Keycloak create a temporary administrator at start: an environment
# variable (service environment, unit, process) or an option of keycloak.conf.
_BOOTSTRAP_SETTING = re.compile(
    r"(?:^|\x00|\n)\s*(?:Environment=)?\"?(KC_BOOTSTRAP_ADMIN_[A-Z_]+|bootstrap-admin-[a-z-]+)\s*="
)


def _in_master(problems: list[str]) -> list[str]:
    return [f"realm {MASTER}: {problem}" for problem in problems]


@pytest.mark.charter("C10")
def test_master_brute_force_protection(
    kc_admin: KeycloakAdmin, evidence: Callable[[str], None]
) -> None:
    settings = _realm(kc_admin, MASTER)
    evidence(
        f"royaume {MASTER} : bruteForceProtected {settings.get('bruteForceProtected')}, "
        f"failureFactor {settings.get('failureFactor')}, politique de mots de passe "
        f"« {settings.get('passwordPolicy') or 'aucune'} » (réglage lu)"
    )
    problems = kc.brute_force_problems(settings)
    if not settings.get("passwordPolicy"):
        problems.append("no password policy")
    assert not problems, "; ".join(_in_master(problems))


@pytest.mark.charter("C7", "C10")
def test_master_events_recorded_and_expiring(
    kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    """The administrators' logins and changes leave a trail (C10), kept as long as the
    tenant realms' (C7)."""
    settings = _realm(kc_admin, MASTER)
    login_days = int(policies.retention["login_events"]["retention_days"])
    admin_days = int(policies.retention["admin_events"]["retention_days"])
    evidence(
        f"royaume {MASTER} : eventsEnabled {settings.get('eventsEnabled')}, eventsExpiration "
        f"{settings.get('eventsExpiration')} s ; adminEventsEnabled "
        f"{settings.get('adminEventsEnabled')}, détails "
        f"{settings.get('adminEventsDetailsEnabled')}, adminEventsExpiration "
        f"{(settings.get('attributes') or {}).get('adminEventsExpiration')} s "
        f"(politique : {login_days} et {admin_days} jours) ; réglage lu"
    )
    problems = kc.events_expiration_problems(settings, login_days)
    problems += kc.admin_events_expiration_problems(settings, admin_days)
    if settings.get("adminEventsEnabled") and not settings.get("adminEventsDetailsEnabled"):
        problems.append("admin events are recorded without what was changed")
    problems += kc.event_listener_problems(settings)
    assert not problems, "; ".join(_in_master(problems))


@pytest.mark.charter("C7")
@pytest.mark.parametrize(
    ("endpoint", "category"), [("events", "login_events"), ("admin-events", "admin_events")]
)
def test_master_events_older_than_policy_are_gone(
    endpoint: str,
    category: str,
    kc_admin: KeycloakAdmin,
    policies: Policies,
    evidence: Callable[[str], None],
) -> None:
    """Observed, as for the tenant realms: Keycloak keeps no administrator's login or change
    older than the policy (the setting alone is read by the test above)."""
    days = int(policies.retention[category]["retention_days"])
    events, cutoff = _old_events(kc_admin, MASTER, endpoint, days, evidence)
    what = "login events" if endpoint == "events" else "admin events"
    problems = kc.old_event_problems(f"{what} of realm {MASTER}", events, cutoff, days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_master_admin_requires_otp(
    kc_admin: KeycloakAdmin, deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    problems = _otp_flow_problems(kc_admin, MASTER, _admin_role(deployment), evidence)
    assert not problems, "; ".join(problems)


def _declared_master_admins(deployment: Deployment) -> set[str]:
    admins = _keycloak_variables(deployment).get("keycloak_master_admins", [])
    if kc.is_templated(admins) or not isinstance(admins, list):
        pytest.skip("keycloak_master_admins est un gabarit Jinja dans l'inventaire")
    names = {str(a.get("username", "")) for a in admins if isinstance(a, dict)}
    if any(kc.is_templated(name) for name in names):
        pytest.skip("un nom d'administrateur de keycloak_master_admins est un gabarit Jinja")
    return names


@pytest.mark.charter("C10")
def test_master_users_are_declared_administrators_with_otp(
    kc_admin: KeycloakAdmin, deployment: Deployment, evidence: Callable[[str], None]
) -> None:
    """An allow-list: master's people are the inventory's platform administrators, each
    holding the role the flows ask OTP of; anyone else (the temporary bootstrap account
    first) fails, named. Service accounts of master's clients sign in with no password."""
    declared = _declared_master_admins(deployment)
    admin_role = _admin_role(deployment)
    users = _get(kc_admin, f"admin/realms/{MASTER}/users", briefRepresentation="false", max=1000)
    temporary = {
        str(u["username"])
        for u in _get(kc_admin, f"admin/realms/{MASTER}/users", q="is_temporary_admin:true")
    }
    people = [u for u in users if not str(u["username"]).startswith("service-account-")]
    problems = []
    for user in people:
        name = str(user["username"])
        roles = _get(
            kc_admin, f"admin/realms/{MASTER}/users/{user['id']}/role-mappings/realm/composite"
        )
        holds = admin_role in {str(r["name"]) for r in roles}
        flagged = name in temporary or "is_temporary_admin" in (user.get("attributes") or {})
        evidence(
            f"royaume {MASTER} : compte {name}"
            + (" (administrateur temporaire d'amorçage)" if flagged else "")
            + (" déclaré" if name in declared else " non déclaré")
            + f", rôle {admin_role} {'oui' if holds else 'non'} (lu)"
        )
        if flagged:
            problems.append(f"realm {MASTER}: {name} is a temporary (bootstrap) administrator")
        elif name not in declared:
            problems.append(f"realm {MASTER}: user {name} is not in keycloak_master_admins")
        elif not holds:
            problems.append(f"realm {MASTER}: {name} does not hold {admin_role} (no OTP asked)")
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C10")
def test_no_bootstrap_admin_setting_on_keycloak_hosts(
    keycloak_host_name: str,
    connect: Callable[[str], Any],
    deployment: Deployment,
    evidence: Callable[[str], None],
) -> None:
    """Neither the service's files nor the running process hold a bootstrap administrator
    (KC_BOOTSTRAP_ADMIN_*, bootstrap-admin-*): read in every place that can set one."""
    host = connect(keycloak_host_name)
    variables = next(
        h.variables for h in deployment.in_group("keycloak") if h.name == keycloak_host_name
    )
    config_dir = str(variables.get("keycloak_config_dir", "/etc/keycloak"))
    if kc.is_templated(config_dir):
        config_dir = "/etc/keycloak"
    pid = host.check_output("systemctl show -p MainPID --value keycloak").strip()
    places = {
        f"{config_dir}/keycloak.env": f"cat {config_dir}/keycloak.env 2>/dev/null || true",
        f"{config_dir}/keycloak.conf": f"cat {config_dir}/keycloak.conf 2>/dev/null || true",
        "systemctl cat keycloak": "systemctl cat keycloak 2>/dev/null || true",
        f"/proc/{pid}/environ": f"tr '\\0' '\\n' < /proc/{pid}/environ 2>/dev/null || true",
    }
    problems = []
    for place, command in places.items():
        found = sorted(set(_BOOTSTRAP_SETTING.findall(host.check_output(command))))
        # Names only: the values are secrets and never leave the host.
        shown = ", ".join(found) or "aucun réglage d'amorçage"
        evidence(f"{keycloak_host_name} : {place} -> {shown}")
        if found:
            problems.append(f"{keycloak_host_name}: {place} sets {', '.join(found)}")
    if pid in ("", "0"):
        problems.append(f"{keycloak_host_name}: Keycloak is not running (no process to read)")
    assert not problems, "; ".join(problems)


# --- Offline sessions (C7) ------------------------------------------------------------------

# Client settings that override the realm's offline session limits (0 or absent: the realm's).
_CLIENT_OFFLINE = {
    "client.offline.session.max.lifespan": "max",
    "client.offline.session.idle.timeout": "idle",
}


def _offline_session_problems(
    realm: str,
    settings: dict[str, Any],
    clients: list[dict[str, Any]],
    max_days: int,
    idle_days: int,
) -> list[str]:
    limits = {"max": max_days * kc.DAY, "idle": idle_days * kc.DAY}
    problems = []
    if not settings.get("offlineSessionMaxLifespanEnabled"):
        problems.append(
            f"realm {realm}: offline sessions have no maximum lifespan (they last while used)"
        )
    for key, kind in (("offlineSessionMaxLifespan", "max"), ("offlineSessionIdleTimeout", "idle")):
        value = int(settings.get(key) or 0)
        if value <= 0 or value > limits[kind]:
            problems.append(f"realm {realm}: {key} is {value} s, the policy says {limits[kind]} s")
    for client in clients:
        for attribute, kind in _CLIENT_OFFLINE.items():
            value = int((client.get("attributes") or {}).get(attribute) or 0)
            if value > limits[kind]:
                problems.append(
                    f"realm {realm}: client {client.get('clientId')} sets {attribute} to "
                    f"{value} s, past the policy's {limits[kind]} s"
                )
    return problems


def _check_offline_sessions(
    kc_admin: KeycloakAdmin, realm: str, policies: Policies, evidence: Callable[[str], None]
) -> None:
    rule = policies.retention.get("offline_sessions")
    if rule is None:
        pytest.skip("retention.yml ne fixe pas de durée aux sessions hors ligne (offline_sessions)")
    max_days = int(rule["retention_days"])
    idle_days = int(rule.get("idle_days", max_days))
    settings = _realm(kc_admin, realm)
    clients = _get(kc_admin, f"admin/realms/{quote(realm, safe='')}/clients")
    evidence(
        f"royaume {realm} : offlineSessionMaxLifespanEnabled "
        f"{settings.get('offlineSessionMaxLifespanEnabled')}, offlineSessionMaxLifespan "
        f"{settings.get('offlineSessionMaxLifespan')} s, offlineSessionIdleTimeout "
        f"{settings.get('offlineSessionIdleTimeout')} s (politique : {max_days} jours, "
        f"{idle_days} jours sans usage) ; réglages lus, clients compris"
    )
    problems = _offline_session_problems(realm, settings, clients, max_days, idle_days)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C7")
def test_offline_sessions_bounded(
    realm: str, kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    _check_offline_sessions(kc_admin, realm, policies, evidence)


@pytest.mark.charter("C7")
def test_master_offline_sessions_bounded(
    kc_admin: KeycloakAdmin, policies: Policies, evidence: Callable[[str], None]
) -> None:
    _check_offline_sessions(kc_admin, MASTER, policies, evidence)


# --- Transparency (C6) ----------------------------------------------------------------------


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
