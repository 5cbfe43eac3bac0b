"""Fixtures for the regional lab (issue #9): its inventory, its Keycloak behind the load
balancer, and a record of what the drills measured (reports/regional-drills.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from keycloak import KeycloakAdmin
from tests.keycloak_lab import LabKeycloak, TestUser, admin_client, disposable_user, keycloak_info

from educloud.lab.settings import LabPaths
from educloud.netpin import pinned_names
from educloud.paths import inventories_dir, repo_root
from educloud.regional import topology
from educloud.regional.topology import Regional

REGIONAL = inventories_dir() / "lab-regional"
# The reverse_proxy role exports the regional CA here (inventories/lab-regional).
REGIONAL_CA = LabPaths.default().root / "ca-regional.crt"
MEASUREMENTS = repo_root() / "reports" / "regional-drills.json"


@pytest.fixture(scope="session")
def regional() -> Regional:
    if not (REGIONAL / "hosts.yml").exists():
        pytest.fail("no regional lab: run 'educloud lab up --variant regional' and deploy it")
    return topology.load(REGIONAL)


@pytest.fixture(scope="session")
def regional_keycloak() -> Iterator[LabKeycloak]:
    info = keycloak_info(REGIONAL, REGIONAL_CA)
    with pinned_names(info.pinned):
        yield info


@pytest.fixture(scope="session")
def regional_admin(regional_keycloak: LabKeycloak) -> KeycloakAdmin:
    return admin_client(regional_keycloak)


@pytest.fixture
def regional_user(regional_admin: KeycloakAdmin) -> Iterator[TestUser]:
    with disposable_user(regional_admin) as user:
        yield user


@pytest.fixture(scope="session")
def record_measurement() -> Iterator[Any]:
    """Store a drill's figures under a name; written to reports/regional-drills.json."""
    measured: dict[str, Any] = {}

    def record(name: str, figures: dict[str, Any]) -> None:
        measured[name] = figures
        print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")

    yield record
    if measured:
        MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
        previous: dict[str, Any] = {}
        if MEASUREMENTS.exists():
            previous = json.loads(MEASUREMENTS.read_text())
        MEASUREMENTS.write_text(json.dumps(previous | measured, indent=2, sort_keys=True) + "\n")
