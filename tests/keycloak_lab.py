"""Disposable users in a lab realm (the lab's Keycloak: educloud.lab.keycloak_access).

Shared by the integration tests (the single server, inventories/lab) and the regional
drills (inventories/lab-regional).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from keycloak import KeycloakAdmin

from educloud.lab.keycloak_access import LabKeycloak, admin_client, keycloak_info

__all__ = ["LabKeycloak", "TestUser", "admin_client", "disposable_user", "keycloak_info"]


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # a fixture's value, not a test class
    id: str
    username: str
    password: str
    group: str


@contextmanager
def disposable_user(kc_admin: KeycloakAdmin) -> Iterator[TestUser]:
    """A pupil account in its own class group, deleted afterwards."""
    username = f"pytest-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18) + "aA1!"
    user_id = kc_admin.create_user(
        {
            "username": username,
            "email": f"{username}@educloud.test",
            "firstName": "Test",
            "lastName": "Eleve",
            "enabled": True,
            "emailVerified": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    group = f"classe-{username}"
    group_id = kc_admin.create_group({"name": group})
    kc_admin.group_user_add(user_id, group_id)
    try:
        yield TestUser(user_id, username, password, group)
    finally:
        kc_admin.delete_user(user_id)
        kc_admin.delete_group(group_id)
