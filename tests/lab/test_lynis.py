"""Issue #26: Lynis on every host of the single-server lab (tests/lynis_hosts.py)."""

from __future__ import annotations

import pytest
from tests.lynis_hosts import assert_hardened, lynis_archive, topology_hosts

pytestmark = pytest.mark.lab
__all__ = ["lynis_archive"]  # the fixture, imported to be found by pytest


@pytest.mark.parametrize("lab_host", topology_hosts("single"))
def test_lynis_hardening_index_and_no_warning(
    lab_host: str, lynis_archive: bytes, record_property: pytest.RecordProperty
) -> None:
    assert_hardened(lab_host, lynis_archive, record_property)
