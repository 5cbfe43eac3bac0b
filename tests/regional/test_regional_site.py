"""site.yml on the regional lab: a second run changes nothing, on every host (issue #9).

Run right after the converge, before the drills move the database's leader around."""

from __future__ import annotations

from pathlib import Path

import pytest

from educloud.deploy import run_site
from educloud.regional.topology import Regional

pytestmark = pytest.mark.regional
REGIONAL_INVENTORY = Path("inventories/lab-regional")


def test_second_run_changes_nothing(regional: Regional) -> None:
    result = run_site(REGIONAL_INVENTORY)
    assert result.ok, "site.yml failed on the regional lab"
    assert set(result.recap) == {h.name for h in regional.hosts}
    changed = {host: r.changed for host, r in result.recap.items() if r.changed}
    assert changed == {}, f"site.yml is not idempotent on the regional lab: {changed}"
