"""Log in through Keycloak's authorization-code flow with PKCE, as a browser would.

Used by the checks: it drives the real login form over HTTPS and stops at the redirect
to the application, then exchanges the code for tokens like the application would.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import requests

_FORM_ACTION = re.compile(r'<form[^>]*\saction="([^"]+)"', re.IGNORECASE)


@dataclass
class LoginOutcome:
    """Where the login ended: tokens, or the page Keycloak showed instead."""

    tokens: dict[str, Any] = field(default_factory=dict)
    page: str = ""
    status: int = 0

    @property
    def ok(self) -> bool:
        return "access_token" in self.tokens


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return verifier, challenge


def form_action(page: str) -> str | None:
    match = _FORM_ACTION.search(page)
    return html.unescape(match.group(1)) if match else None


def authorization_code_login(
    *,
    public_url: str,
    realm: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    username: str,
    password: str,
    verify: str | bool = True,
    timeout: float = 30.0,
) -> LoginOutcome:
    oidc = f"{public_url}/realms/{realm}/protocol/openid-connect"
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    session = requests.Session()
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    # verify on every call: a session-level value loses to REQUESTS_CA_BUNDLE.
    login_page = session.get(f"{oidc}/auth?{query}", timeout=timeout, verify=verify)
    action = form_action(login_page.text)
    if login_page.status_code != 200 or action is None:
        return LoginOutcome(page=login_page.text, status=login_page.status_code)
    answer = session.post(
        action,
        data={"username": username, "password": password, "credentialId": ""},
        allow_redirects=False,
        timeout=timeout,
        verify=verify,
    )
    location = answer.headers.get("Location", "")
    if answer.status_code == 302 and location.startswith(public_url + "/"):
        # Keycloak's own next step (a required action such as configuring OTP): show it.
        step = session.get(location, timeout=timeout, verify=verify)
        return LoginOutcome(page=step.text, status=step.status_code)
    if answer.status_code != 302 or not location.startswith(redirect_uri):
        return LoginOutcome(page=answer.text, status=answer.status_code)
    params = parse_qs(urlparse(location).query)
    if params.get("state") != [state] or "code" not in params:
        return LoginOutcome(page=location, status=answer.status_code)
    token = session.post(
        f"{oidc}/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client_id, client_secret),
        timeout=timeout,
        verify=verify,
    )
    if token.status_code != 200:
        return LoginOutcome(page=token.text, status=token.status_code)
    tokens: dict[str, Any] = token.json()
    return LoginOutcome(tokens=tokens, status=token.status_code)


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, without checking its signature (the caller got it over TLS)."""
    import json

    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims
