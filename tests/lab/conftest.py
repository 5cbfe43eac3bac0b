"""Fixtures for tests that need the running lab (educloud lab up)."""

from __future__ import annotations

import pytest

from educloud.lab import orchestrate


@pytest.fixture(scope="session")
def lab_hosts() -> list[orchestrate.HostStatus]:
    hosts = [h for h in orchestrate.status() if h.running and not h.dynamic]
    if not hosts:
        pytest.fail("the lab is not running: run 'educloud lab up' first")
    return hosts
