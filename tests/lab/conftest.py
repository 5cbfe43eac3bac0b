"""Fixtures for tests that need the running lab (educloud lab up)."""

from __future__ import annotations

import pytest

from educloud.lab import orchestrate


@pytest.fixture(scope="session")
def lab_hosts() -> list[orchestrate.HostStatus]:
    # The single-server lab's own hosts: neither the molecule scenarios' (dynamic) nor the
    # regional lab's, which may run beside.
    hosts = [
        h for h in orchestrate.status() if h.running and not h.dynamic and h.variant == "single"
    ]
    if not hosts:
        pytest.fail("the lab is not running: run 'educloud lab up' first")
    return hosts


# Guarantee id -> [breaks caught, breaks tried] (test_break_catalogue), counted from the
# reports so that it also works when the breaks run on xdist workers.
CAUGHT: dict[str, list[int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    properties = dict(report.user_properties)
    guarantee = properties.get("break_guarantee")
    if guarantee:
        tally = CAUGHT.setdefault(str(guarantee), [0, 0])
        tally[1] += 1
        tally[0] += 1 if properties.get("break_caught") == "yes" else 0


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Per guarantee, how many breaks of the catalogue were caught."""
    if not CAUGHT:
        return
    terminalreporter.section("break catalogue: breaks caught per guarantee")
    for guarantee in sorted(CAUGHT, key=lambda g: int(g[1:])):
        caught, tried = CAUGHT[guarantee]
        terminalreporter.write_line(f"{guarantee}: {caught}/{tried} caught")
    total = [sum(v[i] for v in CAUGHT.values()) for i in (0, 1)]
    terminalreporter.write_line(f"all: {total[0]}/{total[1]} caught")
