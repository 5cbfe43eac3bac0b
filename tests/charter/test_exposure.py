"""What a public name exposes (C10): Keycloak's admin API and master realm whatever the
path's encoding, and nothing for a name the deployment does not serve (issue #29); and
what the sites kept to the administrators' networks let anyone else reach.

Requests go byte for byte (no client-side normalisation) to the deployment's sites, with an
administrator's token on purpose: if a variant reached the admin API, Keycloak would answer
with data, not refuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from keycloak import KeycloakAdmin

from educloud.charter import admin_access, exposure
from educloud.deployment.model import Deployment


def _keycloak_site(deployment: Deployment) -> str:
    name = urlsplit(deployment.keycloak_url).hostname if deployment.keycloak_url else None
    if not name or name not in {s.name for s in deployment.public_sites}:
        pytest.skip("Keycloak n'a pas de site public dans l'inventaire")
    return name


def _forwarded_prefixes(deployment: Deployment) -> tuple[str, ...]:
    """Prefixes a Keycloak public site forwards: climbing out of them is the usual trick."""
    return (*(f"/realms/{realm}/" for realm in deployment.realms), "/resources/")


@pytest.mark.charter("C10")
def test_admin_api_unreachable_on_public_name(
    deployment: Deployment,
    ca_bundle: str,
    kc_admin: KeycloakAdmin,
    evidence: Callable[[str], None],
) -> None:
    site = _keycloak_site(deployment)
    realm = deployment.realms[0] if deployment.realms else "master"
    if not kc_admin.connection.token:  # client credentials: fetched on the first call
        kc_admin.connection.get_token()
    token = (kc_admin.connection.token or {}).get("access_token", "")
    assert token, "pas de jeton d'administration pour sonder l'API"
    target = f"/admin/realms/{realm}/users/count"
    variants = exposure.encoded_variants(target, _forwarded_prefixes(deployment))
    reached, statuses = [], set()
    for path in variants:
        answer = exposure.request(
            site, path, ca_bundle, headers={"Authorization": f"Bearer {token}"}
        )
        statuses.add("fermé" if answer is None else str(answer.status))
        if exposure.keycloak_admin_reached(answer):
            reached.append(f"{path} ({answer.status if answer else '-'})")
    evidence(
        f"{site} : {len(variants)} écritures de {target} (encodages, remontées de chemin), "
        f"avec un jeton d'administrateur ; réponses {', '.join(sorted(statuses))}"
    )
    assert not reached, f"API d'administration atteinte sur {site} par : " + "; ".join(reached)


@pytest.mark.charter("C10")
def test_master_realm_not_on_public_names(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    discovery = "/realms/master/.well-known/openid-configuration"
    grant_endpoint = "/realms/master/protocol/openid-connect/token"
    inside = _forwarded_prefixes(deployment)
    reached, asked = [], 0
    for path in exposure.encoded_variants(discovery, inside):
        answer = exposure.request(public_site, path, ca_bundle)
        asked += 1
        if exposure.realm_reached(answer, "master"):
            reached.append(f"GET {path} ({answer.status if answer else '-'})")
    form = b"grant_type=password&client_id=admin-cli&username=educloud-x&password=x"
    for path in exposure.encoded_variants(grant_endpoint, inside)[:6]:
        answer = exposure.request(
            public_site,
            path,
            ca_bundle,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=form,
        )
        asked += 1
        if exposure.realm_reached(answer, "master"):
            reached.append(f"POST {path} ({answer.status if answer else '-'})")
    evidence(
        f"{public_site} : {asked} requêtes vers le royaume master (découverte, jeton), "
        f"{len(reached)} servies par Keycloak"
    )
    assert not reached, f"royaume master servi sur {public_site} : " + "; ".join(reached)


@pytest.mark.charter("C10")
def test_unknown_names_get_421(site: str, ca_bundle: str, evidence: Callable[[str], None]) -> None:
    problems, seen = [], []
    for scheme, tls in (("https", True), ("http", False)):
        answer = exposure.request(site, "/", ca_bundle, host=exposure.UNKNOWN_NAME, tls=tls)
        seen.append(f"{scheme} {'fermé' if answer is None else answer.status}")
        problem = exposure.unknown_name_problem(answer, scheme)
        if problem:
            problems.append(problem)
    evidence(f"{site}, Host {exposure.UNKNOWN_NAME} : {', '.join(seen)}")
    assert not problems, f"{site} : " + "; ".join(problems)


@pytest.mark.charter("C10")
def test_admin_sites_answer_only_the_admin_networks(
    proxy_host_name: str,
    deployment: Deployment,
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    """Each site kept to the administrators' networks (the admin console and API, the
    moderation API), as nginx applies its access rules (educloud.charter.admin_access)."""
    host = deployment.host(proxy_host_name)
    sites = [s.name for s in deployment.sites if not s.public and s.proxy_address == host.address]
    if not sites:
        pytest.skip(f"{proxy_host_name} ne sert aucun site réservé aux administrateurs")
    networks = host.variables.get("educloud_admin_networks")
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        pytest.skip("educloud_admin_networks n'est pas une liste d'adresses dans l'inventaire")
    dump = str(connect(proxy_host_name).check_output("nginx -T"))
    problems = [p for site in sites for p in admin_access.admin_site_problems(dump, site, networks)]
    evidence(
        f"{proxy_host_name} : {', '.join(sites)} d'après nginx -T ; réseaux des "
        f"administrateurs {', '.join(networks)} et la boucle locale"
    )
    assert not problems, "admin site open beyond the administrators' networks: " + " | ".join(
        problems
    )
