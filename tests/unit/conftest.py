"""Fixtures shared by the unit tests of the report service and of `educloud moderation`:
one throwaway PostgreSQL cluster per module, and the service served in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.reports_support import PostgresCluster, Service, running_cluster, serve


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with running_cluster() as started:
        yield started


@pytest.fixture
def service(cluster: PostgresCluster, tmp_path: Path) -> Iterator[Service]:
    with serve(cluster, tmp_path) as running:
        yield running
