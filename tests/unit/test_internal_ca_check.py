"""The charter check of the internal CA's certificate (C10, issue #29 finding 9) is an
allow-list: real CA certificates, built here with cryptography, each with one way out of the
deployment's names or of TLS server use, are each named; the certificate the role writes
passes. And what the check demands is what OpenSSL enforces: under a CA that passes, a
certificate its key signs for any other name, or for a client or an e-mail signer, is refused
by `openssl verify`.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.charter.test_internal_ca import constraint_problems, describe_constraints

# The lab's sites (inventories/lab): the deployment's own names, all served by one proxy.
OWN = frozenset({"auth.educloud.test", "auth-admin.educloud.test", "cloud.educloud.test"})
SITES = tuple(sorted(OWN))
NOW = datetime.datetime.now(datetime.UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
SERVER = ExtendedKeyUsageOID.SERVER_AUTH

# The name constraints the role writes (tasks/certificates_internal_ca.yml).
DNS_OWN: list[x509.GeneralName] = [x509.DNSName(n) for n in SITES]
IMPOSSIBLE: list[x509.GeneralName] = [
    x509.RFC822Name(".invalid"),
    x509.UniformResourceIdentifier(".invalid"),
]
NO_IP: list[x509.GeneralName] = [
    x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
    x509.IPAddress(ipaddress.ip_network("::/0")),
]


def _ca(
    permitted: list[x509.GeneralName] | None = None,
    excluded: list[x509.GeneralName] | None = None,
    usages: list[x509.ObjectIdentifier] | None = None,
    *,
    critical: bool = True,
    constraints: bool = True,
) -> x509.Certificate:
    """A self-signed CA certificate like the role's, with the given constraints and extended
    key usage (None: the role's; [] for usages: no extension)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "educloud internal CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(KEY.public_key()), False)
    )
    usages = [SERVER] if usages is None else usages
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if constraints:
        builder = builder.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[*DNS_OWN, *IMPOSSIBLE] if permitted is None else permitted,
                excluded_subtrees=NO_IP if excluded is None else excluded,
            ),
            critical=critical,
        )
    return builder.sign(KEY, hashes.SHA256())


def test_the_roles_ca_passes() -> None:
    assert constraint_problems(_ca(), OWN, SITES) == []


def test_a_ca_for_some_of_the_names_passes_for_its_own_sites() -> None:
    """A proxy serving some of the deployment's names, under a CA that permits all of them
    (one CA for several proxies)."""
    assert constraint_problems(_ca(), OWN, ("cloud.educloud.test",)) == []


@pytest.mark.parametrize(
    ("certificate", "named"),
    [
        pytest.param(_ca(usages=[]), "has no extended key usage", id="no-eku"),
        pytest.param(
            _ca(usages=[SERVER, ExtendedKeyUsageOID.CLIENT_AUTH]),
            "also allows clientAuth",
            id="eku-client",
        ),
        pytest.param(
            _ca(usages=[SERVER, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            "also allows emailProtection",
            id="eku-email",
        ),
        pytest.param(
            _ca(usages=[SERVER, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]),
            "also allows anyExtendedKeyUsage",
            id="eku-any",
        ),
        pytest.param(
            _ca(usages=[ExtendedKeyUsageOID.CLIENT_AUTH]),
            "does not allow serverAuth",
            id="eku-without-server",
        ),
        pytest.param(
            _ca(permitted=[x509.DNSName("educloud.test"), *IMPOSSIBLE]),
            "permits DNS educloud.test, above the deployment's names",
            id="parent-domain",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, x509.DNSName(".educloud.test"), *IMPOSSIBLE]),
            "permits DNS .educloud.test, above the deployment's names",
            id="parent-domain-dot",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, x509.DNSName("intranet.educloud.test"), *IMPOSSIBLE]),
            "permits DNS intranet.educloud.test, none of the deployment's names",
            id="sibling-name",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, x509.DNSName("www.impots.gouv.fr"), *IMPOSSIBLE]),
            "permits DNS www.impots.gouv.fr, none of the deployment's names",
            id="foreign-name",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, IMPOSSIBLE[1]]),
            "no subtree of e-mail addresses",
            id="email-unconstrained",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, IMPOSSIBLE[0]]), "no subtree of URIs", id="uri-unconstrained"
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, *IMPOSSIBLE, x509.RFC822Name("educloud.test")]),
            "permits RFC822Name educloud.test",
            id="email-subtree",
        ),
        pytest.param(
            _ca(permitted=[*DNS_OWN, *IMPOSSIBLE, x509.UniformResourceIdentifier(".test")]),
            "permits UniformResourceIdentifier .test",
            id="uri-subtree",
        ),
        pytest.param(
            _ca(
                permitted=[
                    *DNS_OWN,
                    *IMPOSSIBLE,
                    x509.IPAddress(ipaddress.ip_network("198.18.0.0/24")),
                ]
            ),
            "permits IPAddress 198.18.0.0/24",
            id="ip-permitted",
        ),
        pytest.param(_ca(permitted=IMPOSSIBLE), "permit no DNS subtree", id="no-dns-subtree"),
        pytest.param(
            _ca(permitted=[x509.DNSName("cloud.educloud.test"), *IMPOSSIBLE]),
            "the site auth.educloud.test is outside its permitted names",
            id="site-outside",
        ),
        pytest.param(
            _ca(excluded=NO_IP[:1]), "does not exclude IP addresses ::/0", id="ipv6-not-excluded"
        ),
        pytest.param(_ca(critical=False), "not critical", id="not-critical"),
        pytest.param(_ca(constraints=False), "has no name constraints", id="no-constraints"),
    ],
)
def test_each_way_out_is_named(certificate: x509.Certificate, named: str) -> None:
    problems = constraint_problems(certificate, OWN, SITES)
    assert any(named in p for p in problems), problems


def test_a_parent_domain_set_on_purpose_still_fails() -> None:
    """reverse_proxy_ca_permitted_domains may name a parent domain (the role accepts it): the
    CA can then vouch for every sibling name, and the check says so."""
    parent = _ca(permitted=[*DNS_OWN, x509.DNSName("educloud.test"), *IMPOSSIBLE])
    assert constraint_problems(parent, OWN, SITES) == [
        "it permits DNS educloud.test, above the deployment's names: it can vouch for every "
        "other name under it"
    ]


def test_the_evidence_names_constraints_and_usage() -> None:
    said = describe_constraints(_ca())
    assert "permis DNSName:auth-admin.educloud.test" in said
    assert "RFC822Name:.invalid, UniformResourceIdentifier:.invalid" in said
    assert said.endswith("usages étendus de clé : serverAuth")
    assert "aucun usage étendu de clé" in describe_constraints(_ca(usages=[]))


# What OpenSSL does with a CA the check passes: a stolen key signs these, each is refused.


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _leaf(names: list[x509.GeneralName], common_name: str = "attack") -> x509.Certificate:
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "educloud internal CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [SERVER, ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
            ),
            critical=False,
        )
        .sign(KEY, hashes.SHA256())
    )


def _verify(tmp_path: Path, ca: x509.Certificate, leaf: x509.Certificate, purpose: str) -> str:
    """`openssl verify` of the leaf under the CA for a purpose: "OK" or its error line."""
    (tmp_path / "ca.crt").write_bytes(_pem(ca))
    (tmp_path / "leaf.crt").write_bytes(_pem(leaf))
    answer = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), "-purpose", purpose,
         str(tmp_path / "leaf.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    said = answer.stdout + answer.stderr
    return "OK" if answer.returncode == 0 else said


def test_openssl_accepts_a_site_name_for_a_server(tmp_path: Path) -> None:
    """The control: the role's CA vouches for its own names, and their subdomains."""
    for name in ("cloud.educloud.test", "files.cloud.educloud.test"):
        said = _verify(tmp_path, _ca(), _leaf([x509.DNSName(name)]), "sslserver")
        assert said == "OK", said


@pytest.mark.parametrize(
    "names",
    [
        [x509.DNSName("intranet.educloud.test")],
        [x509.DNSName("educloud.test")],
        [x509.RFC822Name("attacker@educloud.test")],
        [x509.UniformResourceIdentifier("https://intranet.educloud.test/")],
        [x509.IPAddress(ipaddress.ip_address("198.18.0.10"))],
    ],
    ids=["sibling", "parent", "email", "uri", "ip"],
)
def test_openssl_refuses_other_names_under_a_ca_the_check_passes(
    tmp_path: Path, names: list[x509.GeneralName]
) -> None:
    ca = _ca()
    assert constraint_problems(ca, OWN, SITES) == []
    said = _verify(tmp_path, ca, _leaf(names), "sslserver")
    assert "subtree violation" in said, said


def test_openssl_refuses_a_name_only_in_the_common_name(tmp_path: Path) -> None:
    """No DNS name in the certificate: OpenSSL holds its common name to the constraints."""
    leaf = _leaf([x509.RFC822Name("attacker@mail.invalid")], "intranet.educloud.test")
    said = _verify(tmp_path, _ca(), leaf, "sslserver")
    assert "permitted subtree violation" in said, said


@pytest.mark.parametrize("purpose", ["sslclient", "smimesign"])
def test_openssl_refuses_the_cas_own_names_for_another_purpose(
    tmp_path: Path, purpose: str
) -> None:
    said = _verify(tmp_path, _ca(), _leaf([x509.DNSName("cloud.educloud.test")]), purpose)
    assert "unsuitable certificate purpose" in said, said
    # The same certificate under the CA without extended key usage: accepted.
    assert (
        _verify(tmp_path, _ca(usages=[]), _leaf([x509.DNSName("cloud.educloud.test")]), purpose)
        == "OK"
    )
