"""Fixtures for tests against the live services of the lab (Keycloak behind nginx)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from keycloak import KeycloakAdmin
from tests.keycloak_lab import (
    LabKeycloak,
    TestUser,
    admin_client,
    disposable_user,
    keycloak_info,
)

from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir, policies_dir

LAB = inventories_dir() / "lab"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def lab_keycloak() -> Iterator[LabKeycloak]:
    info = keycloak_info(LAB, LabPaths.default().root / "ca.crt")
    with pinned_names(info.pinned):
        yield info


@pytest.fixture(scope="session")
def kc_admin(lab_keycloak: LabKeycloak) -> KeycloakAdmin:
    """python-keycloak on the admin vhost, as the master realm's administrator."""
    return admin_client(lab_keycloak)


@pytest.fixture
def test_user(kc_admin: KeycloakAdmin) -> Iterator[TestUser]:
    """A disposable pupil account in the lab realm, deleted afterwards."""
    with disposable_user(kc_admin) as user:
        yield user


@pytest.fixture(scope="session")
def retention_policy() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(policies_dir() / "retention.yml")
    return data


@pytest.fixture
def scratch_realm(kc_admin, lab_keycloak) -> Iterator[str]:
    """A realm with the lab realm's user profile and a direct-grant client to try passwords."""
    name = f"scratch-{secrets.token_hex(3)}"
    conn = kc_admin.connection
    profile = conn.raw_get(f"admin/realms/{lab_keycloak.realm}/users/profile").json()
    # Stored events: the statistics count logins from them (C12).
    conn.raw_post(
        "admin/realms", data=json.dumps({"realm": name, "enabled": True, "eventsEnabled": True})
    )
    try:
        conn.raw_put(f"admin/realms/{name}/users/profile", data=json.dumps(profile))
        conn.raw_post(
            f"admin/realms/{name}/clients",
            data=json.dumps(
                {
                    "clientId": "try-password",
                    "publicClient": True,
                    "directAccessGrantsEnabled": True,
                }
            ),
        )
        yield name
    finally:
        conn.raw_delete(f"admin/realms/{name}")
