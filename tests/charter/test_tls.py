"""TLS of every site, scanned by sslyze against Mozilla's intermediate profile (C10)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from educloud.charter import tls
from educloud.deployment.model import Deployment


@pytest.mark.charter("C10")
def test_tls_mozilla_intermediate(
    site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    address = deployment.pins()[site]
    verdict = tls.scan(site, address, Path(ca_bundle))
    evidence(
        f"{site} ({address}:443) : versions {', '.join(verdict.accepted_versions) or 'aucune'} ; "
        f"sslyze, profil Mozilla intermediate : {verdict.problems or 'conforme'}"
    )
    assert not verdict.problems, "; ".join(f"{k}: {v}" for k, v in verdict.problems.items())
