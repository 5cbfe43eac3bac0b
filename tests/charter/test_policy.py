"""The policy itself, before any host (C5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from educloud.policy import Policies


@pytest.mark.charter("C5")
def test_egress_destinations_in_allowed_countries(
    policies: Policies, evidence: Callable[[str], None]
) -> None:
    for d in policies.destinations:
        evidence(f"{d.name}: {d.address} {d.protocol}/{d.port}, {d.country} ({d.purpose})")
    outside = [d.name for d in policies.destinations if d.country not in policies.countries_allowed]
    assert not outside, f"destinations outside {policies.countries_allowed}: {outside}"
