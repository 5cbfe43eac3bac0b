"""No package on the servers reports usage to a vendor (C2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud.charter.hostconfig import TELEMETRY_PACKAGES


@pytest.mark.charter("C2")
def test_no_telemetry_package(
    host_name: str, connect: Callable[[str], Any], evidence: Callable[[str], None]
) -> None:
    target = connect(host_name)
    installed = [name for name in TELEMETRY_PACKAGES if target.package(name).is_installed]
    evidence(
        f"{host_name} : recherchés {', '.join(TELEMETRY_PACKAGES)} ; "
        f"installés : {installed or 'aucun'}"
    )
    assert not installed, f"telemetry packages installed: {installed}"
