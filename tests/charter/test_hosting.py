"""Where each host runs (C1): its declaration, and its public address's country."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from educloud import policy
from educloud.charter import geo
from educloud.deployment.model import Deployment, public_addresses


@pytest.mark.charter("C1")
def test_host_declares_approved_hosting(
    host_name: str,
    deployment: Deployment,
    policies: policy.Policies,
    evidence: Callable[[str], None],
) -> None:
    declaration = deployment.host(host_name).variables.get("educloud_hosting")
    evidence(f"{host_name}: educloud_hosting = {declaration}")
    problems = policy.hosting_problems(policies, declaration)
    assert not problems, "; ".join(problems)


@pytest.mark.charter("C1")
def test_public_address_located_in_allowed_country(
    host_name: str,
    deployment: Deployment,
    policies: policy.Policies,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    interfaces = connect(host_name).check_output("hostname -I").split()
    addresses = public_addresses(deployment.host(host_name), interfaces)
    if not addresses:
        pytest.skip(f"{host_name} n'a pas d'adresse publique : sa localisation ne peut pas se lire")
    for address in addresses:
        country = geo.country_of(address)
        evidence(f"{host_name} : {address} située en {country} (base geoip-database de Debian)")
        assert country in policies.countries_allowed, f"{address} is in {country}"
