"""The internal CA (issue #29): its key stays on the controller, and it vouches for the
deployment's own domains only (C10).

When a proxy takes its certificates from the reverse_proxy role's internal CA, every host is
searched for a private key whose public half is that CA's (and for the path where earlier
versions of the role kept it), and the CA certificate each proxy holds must carry critical
name constraints that permit only domains of the deployment's sites and exclude every IP
address: with them, a stolen key cannot impersonate any other site.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

from educloud.charter import keyscan
from educloud.deployment.model import Deployment

ALL_IPV4 = ipaddress.ip_network("0.0.0.0/0")
ALL_IPV6 = ipaddress.ip_network("::/0")


@dataclass(frozen=True)
class InternalCa:
    proxy: str
    ca_dir: str
    sites: tuple[str, ...]
    certificate: x509.Certificate | None  # None: ca.crt missing or unreadable on the proxy

    @property
    def key_path(self) -> str:
        return f"{self.ca_dir}/ca.key"


@pytest.fixture(scope="session")
def internal_cas(
    deployment: Deployment,
    connect: Callable[[str], Any],
    inventory_value: Callable[[str, str], Any],
) -> list[InternalCa]:
    """The CA of each proxy that uses the internal CA, read from the proxy itself."""
    found = []
    for proxy in deployment.in_group("reverse_proxy"):
        source = inventory_value(
            proxy.name, "reverse_proxy_certificate_source | default('internal_ca')"
        )
        if source != "internal_ca":
            continue
        ca_dir = str(
            inventory_value(proxy.name, "reverse_proxy_ca_dir | default('/etc/educloud/ca')")
        )
        sites = inventory_value(proxy.name, "reverse_proxy_sites | default([])")
        pem = connect(proxy.name).file(f"{ca_dir}/ca.crt")
        certificate = None
        if pem.exists:
            try:
                certificate = x509.load_pem_x509_certificate(pem.content)
            except ValueError:
                certificate = None
        found.append(
            InternalCa(proxy.name, ca_dir, tuple(str(s["name"]) for s in sites), certificate)
        )
    if not found:
        pytest.skip("no proxy of this deployment takes its certificates from the internal CA")
    return found


def _private_keys(connect: Callable[[str], Any], host_name: str) -> list[keyscan.FoundKey]:
    """Each private key on the host, in any form (educloud.charter.keyscan)."""
    with connect(host_name).sudo():
        answer = connect(host_name).run(keyscan.command())
    if answer.rc != 0:
        pytest.fail(f"{host_name}: the key scan failed: {answer.stderr[-300:]}")
    keys, _ = keyscan.parse(answer.stdout)
    return keys


@pytest.mark.charter("C10")
def test_no_ca_private_key_on_any_host(
    host_name: str,
    internal_cas: list[InternalCa],
    connect: Callable[[str], Any],
    evidence: Callable[[str], None],
) -> None:
    readable = [ca for ca in internal_cas if ca.certificate is not None]
    ca_keys = {
        digest: ca.proxy
        for ca in readable
        if ca.certificate is not None
        for digest in keyscan.fingerprints(ca.certificate.public_key())
    }
    keys = _private_keys(connect, host_name)
    unreadable = [k.path for k in keys if k.sha256 is None]
    evidence(
        f"{host_name} : {len(keys)} clés privées trouvées (PEM, OpenSSH, DER, où qu'elles "
        f"soient sous {', '.join(keyscan.ROOTS)}) ; illisibles (chiffrées) : "
        f"{', '.join(unreadable) or 'aucune'} ; clés publiques des AC internes "
        + ", ".join(f"{digest[:16]}… ({proxy})" for digest, proxy in ca_keys.items())
    )
    problems = [
        f"the private key of {ca_keys[key.sha256]}'s CA is at {host_name}:{key.path}"
        for key in keys
        if key.sha256 in ca_keys
    ]
    for ca in internal_cas:
        if ca.proxy == host_name:
            problems += [
                f"a private key is in the CA directory: {host_name}:{key.path}"
                for key in keys
                if key.path.startswith(f"{ca.ca_dir}/")
            ]
            if connect(host_name).file(ca.key_path).exists:
                problems.append(f"a CA key is left at {host_name}:{ca.key_path}")
    assert not problems, "; ".join(sorted(set(problems)))


def _covers(domain: str, name: str) -> bool:
    return name == domain or name.endswith(f".{domain}")


def constraint_problems(
    certificate: x509.Certificate, own_names: frozenset[str], sites: tuple[str, ...]
) -> list[str]:
    """What lets the CA vouch for a name outside the deployment (allow-list: each permitted
    subtree is a DNS domain of two labels or more above one of the deployment's names)."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return ["the CA certificate has no name constraints: it can vouch for any name"]
    problems = [] if extension.critical else ["its name constraints are not critical"]
    constraints = extension.value
    permitted = list(constraints.permitted_subtrees or [])
    if not permitted:
        problems.append("its name constraints permit no subtree: every DNS name is allowed")
    for subtree in permitted:
        if not isinstance(subtree, x509.DNSName):
            problems.append(f"it permits {subtree.__class__.__name__} {subtree.value}")
            continue
        domain = subtree.value.lstrip(".")
        if domain.count(".") < 1 or not any(_covers(domain, n) for n in own_names):
            problems.append(f"it permits DNS {subtree.value}, above none of the deployment's names")
    domains = [s.value.lstrip(".") for s in permitted if isinstance(s, x509.DNSName)]
    problems += [
        f"the site {site} is outside its permitted domains"
        for site in sites
        if not any(_covers(d, site) for d in domains)
    ]
    excluded = {
        subtree.value
        for subtree in constraints.excluded_subtrees or []
        if isinstance(subtree, x509.IPAddress)
    }
    problems += [
        f"it does not exclude IP addresses {network}"
        for network in (ALL_IPV4, ALL_IPV6)
        if network not in excluded
    ]
    return problems


def describe_constraints(certificate: x509.Certificate) -> str:
    """The CA certificate's name constraints, for the report."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return "aucune contrainte de noms"

    def names(subtrees: Any) -> str:
        return ", ".join(f"{s.__class__.__name__}:{s.value}" for s in subtrees or []) or "aucun"

    return (
        f"contraintes de noms{' critiques' if extension.critical else ' non critiques'} : "
        f"permis {names(extension.value.permitted_subtrees)} ; "
        f"exclus {names(extension.value.excluded_subtrees)}"
    )


@pytest.mark.charter("C10")
def test_internal_ca_constrained_to_the_deployment(
    proxy_host_name: str,
    internal_cas: list[InternalCa],
    deployment: Deployment,
    evidence: Callable[[str], None],
) -> None:
    ca = next((c for c in internal_cas if c.proxy == proxy_host_name), None)
    if ca is None:
        pytest.skip(f"{proxy_host_name} does not take its certificates from the internal CA")
    if ca.certificate is None:
        pytest.fail(f"{proxy_host_name}: no readable CA certificate at {ca.ca_dir}/ca.crt")
    problems = constraint_problems(ca.certificate, deployment.own_names, ca.sites)
    evidence(f"{proxy_host_name} : {ca.ca_dir}/ca.crt, {describe_constraints(ca.certificate)}")
    assert not problems, f"{proxy_host_name}:{ca.ca_dir}/ca.crt: " + "; ".join(problems)
