"""TLS of every site (C10), scanned once by sslyze and held to two references: Mozilla's
intermediate profile, and decision 0017 (ANSSI's TLS guide where it is stricter)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from educloud.charter import tls
from educloud.deployment.model import Deployment


@functools.cache
def _scan(site: str, address: str, ca_bundle: str) -> tls.TlsVerdict:
    # One scan per site and worker serves both checks.
    return tls.scan(site, address, Path(ca_bundle))


@pytest.mark.charter("C10")
def test_tls_mozilla_intermediate(
    site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    address = deployment.pins()[site]
    verdict = _scan(site, address, ca_bundle)
    evidence(
        f"{site} ({address}:443) : versions {', '.join(verdict.accepted_versions) or 'aucune'} ; "
        f"sslyze, profil Mozilla intermediate : {verdict.problems or 'conforme'}"
    )
    assert not verdict.problems, "; ".join(f"{k}: {v}" for k, v in verdict.problems.items())


@pytest.mark.charter("C10")
def test_tls_follows_anssi_decision(
    site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    """Decision 0017: only the decided versions, suites and groups (an allow-list: anything
    else the server accepts fails, named), the server's order of suites, no 0-RTT, no TLS 1.2
    session ticket, no compression, no renegotiation started by the client."""
    address = deployment.pins()[site]
    verdict = _scan(site, address, ca_bundle)
    seen = verdict.observation.summary() if verdict.observation else "rien d'observé"
    evidence(
        f"{site} ({address}:443) : {seen} ; décision 0017 (ANSSI) : "
        f"{verdict.decision_problems or 'conforme'}"
    )
    assert not verdict.decision_problems, "; ".join(
        f"{k}: {v}" for k, v in verdict.decision_problems.items()
    )
