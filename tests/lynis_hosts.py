"""Issue #26: Debian's Lynis, run inside every host of a lab's topology, gives a hardening
index of at least 85 and no warning (docs/anssi-bp028.md, "Relation to Lynis"). Shared by
the single-server lab's test (tests/lab/test_lynis.py) and the regional lab's
(tests/regional/test_regional_lynis.py).

Lynis is downloaded on the controller and run from the host's /tmp, never installed
(educloud.lab.lynis). The figures of each host (index, points, the tests that lose points)
go into the JUnit report's properties, the test's output and the failure message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from educloud.lab import lynis, orchestrate
from educloud.lab.settings import load_topology, topology_file

MINIMUM_INDEX = 85


@pytest.fixture(scope="module")
def lynis_archive() -> Iterator[bytes]:
    """Debian's Lynis, downloaded and unpacked on the controller, as a tar stream."""
    with lynis.unpacked_package() as run:
        yield lynis.package_archive(run)


def topology_hosts(variant: str) -> list[str]:
    """Every host of a lab's topology (single or regional), for parametrize: a host that is
    not running fails its test rather than vanishing from the measurement."""
    return sorted(spec.name for spec in load_topology(topology_file(variant)))


def assert_hardened(host: str, archive: bytes, record_property: pytest.RecordProperty) -> None:
    """Run Lynis on `host`; fail unless its index is at least MINIMUM_INDEX with no warning."""
    result = lynis.audit(orchestrate.ssh_command(host), archive)
    lost = ", ".join(f"{test} {got}/{of}" for test, got, of in result.lost())
    record_property("lynis_hardening_index", result.hardening_index)
    record_property("lynis_points", f"{result.earned} of {result.possible}")
    record_property("lynis_points_lost", lost)
    record_property("lynis_exceptions", "; ".join(result.exceptions))
    print(
        f"{host}: Lynis hardening index {result.hardening_index} "
        f"({result.earned} of {result.possible} points); lost: {lost}; "
        f"exceptions inside Lynis: {result.exceptions or 'none'}"
    )
    assert not result.warnings, f"{host}: Lynis warns: {result.warnings}"
    assert result.hardening_index >= MINIMUM_INDEX, (
        f"{host}: Lynis hardening index {result.hardening_index} < {MINIMUM_INDEX} "
        f"({result.earned} of {result.possible} points); points lost: {lost}"
    )
