"""The internal CA (issue #29): its key stays on the controller, and it vouches for the
deployment's own domains only (C10).

When a proxy takes its certificates from the reverse_proxy role's internal CA, every host is
searched for a private key whose public half is that CA's (and for the path where earlier
versions of the role kept it), and the CA certificate each proxy holds must carry critical
name constraints that permit only the deployment's own names (no parent domain, which would
cover their siblings), e-mail addresses and URIs only under the reserved .invalid, and exclude
every IP address, and an extended key usage of serverAuth alone: with them, a stolen key
cannot impersonate any other site, nor sign for a TLS client or an e-mail signer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

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


# The only e-mail and URI subtrees the CA may permit: the reserved top-level domain .invalid
# (RFC 2606), which no mailbox or URI host uses. A permitted subtree of a type confines every
# name of that type, so these make e-mail and URI names impossible; without any, a certificate
# naming only an e-mail address or a URI escapes the DNS constraints.
IMPOSSIBLE_SUBTREES: tuple[x509.GeneralName, ...] = (
    x509.RFC822Name(".invalid"),
    x509.UniformResourceIdentifier(".invalid"),
)


def _dns_subtree_problem(value: str, names: set[str]) -> str | None:
    """None when a permitted DNS subtree is one of the deployment's names (lower case)."""
    if value.lower() in names:
        return None
    domain = value.lower().lstrip(".")  # a leading dot: the subdomains only
    if any(name != domain and _covers(domain, name) for name in names):
        return (
            f"it permits DNS {value}, above the deployment's names: it can vouch for every "
            "other name under it"
        )
    return f"it permits DNS {value}, none of the deployment's names"


def _usage_name(usage: x509.ObjectIdentifier) -> str:
    if usage == ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE:
        return "anyExtendedKeyUsage"
    name = str(getattr(usage, "_name", ""))
    return usage.dotted_string if name in ("", "Unknown OID") else name


def usage_problems(certificate: x509.Certificate) -> list[str]:
    """What lets the CA vouch for anything but a TLS server (allow-list: its extended key
    usage is present and is serverAuth alone; OpenSSL then refuses what it signs for clients
    and e-mail signers)."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return [
            "the CA certificate has no extended key usage: it can vouch for TLS clients and "
            "e-mail signers too"
        ]
    problems = [
        f"its extended key usage also allows {_usage_name(usage)}"
        for usage in usages
        if usage != ExtendedKeyUsageOID.SERVER_AUTH
    ]
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        problems.append("its extended key usage does not allow serverAuth")
    return problems


def constraint_problems(
    certificate: x509.Certificate, own_names: frozenset[str], sites: tuple[str, ...]
) -> list[str]:
    """What lets the CA vouch for a name outside the deployment, or for anything but a TLS
    server (allow-list: each permitted DNS subtree is one of the deployment's names, e-mail
    addresses and URIs are confined to .invalid, every IP address is excluded, and the
    extended key usage is serverAuth alone)."""
    problems = usage_problems(certificate)
    try:
        extension = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return ["the CA certificate has no name constraints: it can vouch for any name", *problems]
    if not extension.critical:
        problems.append("its name constraints are not critical")
    constraints = extension.value
    permitted = list(constraints.permitted_subtrees or [])
    names = {n.lower() for n in own_names}
    dns = [s.value.lower() for s in permitted if isinstance(s, x509.DNSName)]
    if not dns:
        problems.append("its name constraints permit no DNS subtree: every DNS name is allowed")
    for subtree in permitted:
        if subtree in IMPOSSIBLE_SUBTREES:
            continue
        if not isinstance(subtree, x509.DNSName):
            problems.append(f"it permits {subtree.__class__.__name__} {subtree.value}")
            continue
        problem = _dns_subtree_problem(subtree.value, names)
        if problem:
            problems.append(problem)
    for kind, label in (
        (x509.RFC822Name, "e-mail addresses"),
        (x509.UniformResourceIdentifier, "URIs"),
    ):
        if not any(isinstance(s, kind) for s in permitted):
            problems.append(f"it permits no subtree of {label}: it can vouch for any of them")
    problems += [
        f"the site {site} is outside its permitted names"
        for site in sites
        if not any(_covers(d, site.lower()) for d in dns)
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
    """The CA certificate's name constraints and extended key usage, for the report."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usage = "usages étendus de clé : " + ", ".join(_usage_name(u) for u in usages)
    except x509.ExtensionNotFound:
        usage = "aucun usage étendu de clé (extendedKeyUsage)"
    try:
        extension = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return f"aucune contrainte de noms ; {usage}"

    def names(subtrees: Any) -> str:
        return ", ".join(f"{s.__class__.__name__}:{s.value}" for s in subtrees or []) or "aucun"

    return (
        f"contraintes de noms{' critiques' if extension.critical else ' non critiques'} : "
        f"permis {names(extension.value.permitted_subtrees)} ; "
        f"exclus {names(extension.value.excluded_subtrees)} ; {usage}"
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
