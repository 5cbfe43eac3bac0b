"""The keycloak role refuses a bad inventory before changing anything (C2, C5)."""

from __future__ import annotations

import subprocess

import pytest
from tests.unit.role_validation import validate_role

BASE = {
    "keycloak_admin_password": "admin-password-0123",
    "keycloak_db_password": "db-password-0123",
    "keycloak_hostname": "https://auth.academie.test",
    "keycloak_clients": [],
}


def _validate(extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return validate_role("keycloak", {**BASE, **extra})


def _realm(providers: list[dict[str, object]]) -> dict[str, object]:
    return {
        "keycloak_realms": [
            {"name": "academie", "display_name": "Académie", "identity_providers": providers}
        ]
    }


@pytest.mark.charter("C2", "C5")
@pytest.mark.parametrize(
    "provider",
    [
        {"alias": "google", "provider_id": "google", "config": {}},
        {"alias": "gh", "provider_id": "github", "config": {}},
        {"alias": "ms", "provider_id": "microsoft", "config": {}},
        # A generic OIDC provider that is in fact a foreign platform.
        {
            "alias": "sneaky",
            "provider_id": "oidc",
            "config": {"authorizationUrl": "https://accounts.google.com/o/oauth2/auth"},
        },
        {
            "alias": "azure",
            "provider_id": "oidc",
            "config": {"issuer": "https://login.microsoftonline.com/tenant/v2.0"},
        },
    ],
)
def test_social_or_foreign_provider_is_refused(provider):
    result = _validate(_realm([provider]))
    assert result.returncode != 0
    assert "social and foreign" in result.stdout


def test_academy_own_saml_provider_is_accepted():
    provider = {
        "alias": "academie",
        "provider_id": "saml",
        "config": {"singleSignOnServiceUrl": "https://idp.ac-exemple.fr/sso"},
    }
    result = _validate(_realm([provider]))
    assert result.returncode == 0, result.stdout[-2000:]


def test_missing_vault_secret_is_refused_without_printing_it():
    result = _validate({"keycloak_admin_password": ""})
    assert result.returncode != 0
    assert "db-password-0123" not in result.stdout


def test_wildcard_redirect_uri_is_refused():
    client = {
        "client_id": "app",
        "name": "App",
        "secret": "s" * 20,
        "root_url": "https://app.test",
        "redirect_uris": ["https://app.test/*"],
    }
    result = _validate({"keycloak_clients": [client]})
    assert result.returncode != 0
