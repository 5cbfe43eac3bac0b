"""The keycloak role refuses a bad inventory before changing anything (C2, C5)."""

from __future__ import annotations

import subprocess

import pytest
from tests.unit.role_validation import validate_role

BASE = {
    "keycloak_admin_password": "admin-password-0123",
    "keycloak_db_password": "db-password-0123",
    "keycloak_automation_client_secret": "automation-secret-0123",
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


def _service_client(**changes: object) -> dict[str, object]:
    return {
        "keycloak_service_clients": [
            {
                "client_id": "educloud-accounts",
                "secret": "accounts-secret-0123",
                "realm_management_roles": ["manage-users"],
                **changes,
            }
        ]
    }


def test_least_privilege_service_client_is_accepted():
    result = _validate(_service_client())
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.charter("C10")
@pytest.mark.parametrize("role", ["manage-realm", "realm-admin", "manage-clients"])
def test_service_client_with_a_wider_role_is_refused(role):
    result = _validate(_service_client(realm_management_roles=["manage-users", role]))
    assert result.returncode != 0
    assert f"refused: {role}" in result.stdout
    assert "accounts-secret-0123" not in result.stdout


def test_bulk_import_client_may_hold_manage_realm_and_nothing_wider():
    bulk = _validate(
        _service_client(realm_management_roles=["manage-users", "manage-realm"], bulk_import=True)
    )
    assert bulk.returncode == 0, bulk.stdout[-2000:]
    wider = _validate(
        _service_client(realm_management_roles=["manage-realm", "realm-admin"], bulk_import=True)
    )
    assert wider.returncode != 0
    assert "refused: realm-admin" in wider.stdout


def test_service_client_without_a_secret_is_refused():
    result = _validate(_service_client(secret="tiny-secret"))  # noqa: S106 - a test value
    assert result.returncode != 0
    assert "tiny-secret" not in result.stdout


def test_missing_automation_secret_is_refused_without_printing_it():
    result = _validate({"keycloak_automation_client_secret": ""})
    assert result.returncode != 0
    assert "keycloak_automation_client_secret" in result.stdout
    assert "admin-password-0123" not in result.stdout


@pytest.mark.parametrize(
    ("admin", "why"),
    [
        # The bootstrap account is deleted by the role: it cannot be a permanent one.
        ({"username": "admin", "password": "p" * 16}, "bootstrap account"),
        ({"username": "admin-plateforme", "password": "short"}, "12+ characters"),
        ({"password": "p" * 16}, "needs a username"),
    ],
)
def test_bad_platform_administrator_is_refused(admin, why):
    result = _validate({"keycloak_master_admins": [admin]})
    assert result.returncode != 0
    assert why in result.stdout
    assert "p" * 16 not in result.stdout


def test_offline_idle_past_the_maximum_is_refused():
    result = _validate(
        {
            "keycloak_realm_offline_session_max_lifespan_days": 30,
            "keycloak_realm_offline_session_idle_days": 31,
        }
    )
    assert result.returncode != 0
    assert "keycloak_realm_offline_session_idle_days (31)" in result.stdout


def test_platform_administrator_is_accepted():
    admin = {"username": "admin-plateforme", "password": "p" * 16, "email": "a@academie.test"}
    result = _validate({"keycloak_master_admins": [admin]})
    assert result.returncode == 0, result.stdout[-2000:]
