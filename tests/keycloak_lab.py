"""The lab's Keycloak for the tests: educloud.lab.keycloak_access, re-exported.

Shared by the integration tests (the single server, inventories/lab) and the regional
drills (inventories/lab-regional).
"""

from __future__ import annotations

from educloud.lab.keycloak_access import (
    LabKeycloak,
    admin_client,
    disposable_user,
    keycloak_info,
)
from educloud.lab.keycloak_access import LabUser as TestUser

__all__ = ["LabKeycloak", "TestUser", "admin_client", "disposable_user", "keycloak_info"]
