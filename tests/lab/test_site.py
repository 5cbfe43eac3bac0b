"""site.yml on the lab: a second run changes nothing, and check mode runs clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from educloud.deploy import run_site

pytestmark = pytest.mark.lab
LAB_INVENTORY = Path("inventories/lab")


def test_second_run_changes_nothing(lab_hosts):
    result = run_site(LAB_INVENTORY)
    assert result.ok, "site.yml failed on the lab"
    assert set(result.recap) == {h.name for h in lab_hosts}
    changed = {host: r.changed for host, r in result.recap.items() if r.changed}
    assert changed == {}, f"site.yml is not idempotent: {changed}"


def test_check_mode_runs_clean(lab_hosts):
    result = run_site(LAB_INVENTORY, check=True)
    assert result.ok, "site.yml --check failed on the lab"
    assert all(r.failed == 0 and r.unreachable == 0 for r in result.recap.values())
