"""Decision 0017 (TLS: ANSSI's guide where it is stricter than Mozilla's intermediate
profile): the check's evaluation fed broken observations, the role's lists kept equal to the
check's allow-lists, the nginx configuration the role writes, and the scanner against local
openssl servers (no lab needed) that follow or break the decision."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.port_support import free_port, wait_for_port
from tests.unit.role_validation import render_role_template, validate_role

from educloud import policy
from educloud.charter import tls
from educloud.paths import inventories_dir, repo_root

ROLE = repo_root() / "roles" / "reverse_proxy"

COMPLIANT = tls.TlsObservation(
    accepted_suites={
        "TLSv1.2": (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        "TLSv1.3": tls.DECIDED_TLS13_SUITES,
    },
    groups=("X25519", "secp256r1", "secp384r1"),
    orders=(
        tls.ServerOrder(
            "TLSv1.2",
            ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"),
            ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ),
        tls.ServerOrder(
            "TLSv1.3",
            ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
            ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
        ),
    ),
    early_data=False,
    ticket_resumption=False,
    compression=False,
    client_renegotiation=False,
)


def _with_suites(version: str, *extra: str) -> dict[str, tuple[str, ...]]:
    suites = dict(COMPLIANT.accepted_suites)
    suites[version] = (*suites.get(version, ()), *extra)
    return suites


def test_compliant_observation_passes() -> None:
    assert tls.evaluate(COMPLIANT) == {}
    summary = COMPLIANT.summary()
    assert "choix : le serveur" in summary
    assert "0-RTT refusé" in summary


# Each deviation: the observation's changed fields, the problem's key, a text it must name.
DEVIATIONS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "cbc-suite",
        {"accepted_suites": _with_suites("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")},
        "suites TLSv1.2",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 (CBC, dégradé selon l'ANSSI)",
    ),
    (
        "dhe-suite",
        # In Mozilla's intermediate profile, not in the decision.
        {"accepted_suites": _with_suites("TLSv1.2", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384")},
        "suites TLSv1.2",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 (DHE, dégradé selon l'ANSSI)",
    ),
    (
        "rsa-key-exchange",
        {"accepted_suites": _with_suites("TLSv1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256")},
        "suites TLSv1.2",
        "TLS_RSA_WITH_AES_128_GCM_SHA256 (sans confidentialité persistante)",
    ),
    (
        "ccm-suite-tls13",
        {"accepted_suites": _with_suites("TLSv1.3", "TLS_AES_128_CCM_SHA256")},
        "suites TLSv1.3",
        "TLS_AES_128_CCM_SHA256",
    ),
    (
        "old-version",
        {"accepted_suites": _with_suites("TLSv1.1", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA")},
        "versions",
        "TLSv1.1",
    ),
    (
        "no-tls13",
        {"accepted_suites": {"TLSv1.2": COMPLIANT.accepted_suites["TLSv1.2"]}},
        "TLS 1.3",
        "R3",
    ),
    (
        "extra-group",
        {"groups": ("X25519", "secp256r1", "secp384r1", "secp521r1")},
        "groupes",
        "secp521r1",
    ),
    (
        "client-order",
        {
            "orders": (
                tls.ServerOrder(
                    "TLSv1.3",
                    ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
                    ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
                ),
            )
        },
        "ordre TLSv1.3",
        "le serveur suit l'ordre du client",
    ),
    ("early-data", {"early_data": True}, "0-RTT", "early data"),
    ("tickets", {"ticket_resumption": True}, "tickets de session", "TLS 1.2"),
    ("compression", {"compression": True}, "compression", "CRIME"),
    ("client-renegotiation", {"client_renegotiation": True}, "renégociation", "client"),
    (
        "incomplete",
        {"incomplete": ("tls_1_3_early_data",)},
        "scan incomplet",
        "tls_1_3_early_data",
    ),
]


@pytest.mark.parametrize(
    ("changes", "key", "named"),
    [pytest.param(c, k, n, id=i) for i, c, k, n in DEVIATIONS],
)
def test_each_deviation_fails_named(changes: dict[str, Any], key: str, named: str) -> None:
    problems = tls.evaluate(dataclasses.replace(COMPLIANT, **changes))
    assert list(problems) == [key], problems
    assert named in problems[key]


# --- the role says what the check allows -------------------------------------------------


def _specs() -> dict[str, Any]:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options: dict[str, Any] = specs["argument_specs"]["main"]["options"]
    return options


def _defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return defaults


@pytest.mark.parametrize(
    ("variable", "decided"),
    [
        ("reverse_proxy_ssl_protocols", list(tls.DECIDED_VERSIONS)),
        ("reverse_proxy_ssl_ciphers", list(tls.DECIDED_TLS12_SUITES)),
        ("reverse_proxy_ssl_ciphersuites", list(tls.DECIDED_TLS13_SUITES)),
        ("reverse_proxy_ssl_groups", list(tls.DECIDED_GROUPS)),
    ],
)
def test_role_offers_exactly_the_decision(variable: str, decided: list[str]) -> None:
    """The role refuses (argument spec) what the check would fail, and its default is the
    whole decision in the decided order."""
    assert _specs()[variable]["choices"] == decided
    assert _defaults()[variable] == decided


def _render(tmp_path: Path) -> str:
    rendered = tmp_path / "nginx.conf"
    result = render_role_template(
        "reverse_proxy",
        "nginx.conf.j2",
        rendered,
        {
            "reverse_proxy_sites": [
                {"name": "auth.example.test", "upstream": "http://127.0.0.1:8080"}
            ]
        },
    )
    assert result.returncode == 0, result.stdout[-2000:]
    return rendered.read_text()


def test_nginx_configuration_follows_the_decision(tmp_path: Path) -> None:
    lines = [line.strip() for line in _render(tmp_path).splitlines()]
    expected = [
        "ssl_protocols TLSv1.2 TLSv1.3;",
        f"ssl_ciphers {':'.join(tls.DECIDED_TLS12_SUITES)};",
        f"ssl_conf_command Ciphersuites {':'.join(tls.DECIDED_TLS13_SUITES)};",
        "ssl_prefer_server_ciphers on;",
        f"ssl_ecdh_curve {':'.join(tls.DECIDED_GROUPS)};",
        "ssl_conf_command Options -AllowNoDHEKEX;",
        "ssl_early_data off;",
        "ssl_session_tickets off;",
    ]
    for directive in expected:
        assert lines.count(directive) == 1, directive
    # Without Diffie-Hellman parameters nginx uses no DHE suite.
    assert not [line for line in lines if line.startswith("ssl_dhparam")]


def test_validation_refuses_a_server_without_tls13() -> None:
    policies = policy.load().raw
    result = validate_role(
        "reverse_proxy",
        {
            "reverse_proxy_ssl_protocols": ["TLSv1.2"],
            "reverse_proxy_sites": [
                {"name": "auth.example.test", "upstream": "http://127.0.0.1:80"}
            ],
            "reverse_proxy_privacy_notice": yaml.safe_load(
                (inventories_dir() / "lab/group_vars/reverse_proxy.yml").read_text()
            )["reverse_proxy_privacy_notice"],
            "reverse_proxy_privacy_retention_categories": policies["retention"]["categories"],
            "reverse_proxy_privacy_hosting_providers": policies["hosting"]["providers"],
        },
    )
    assert result.returncode != 0
    assert "reverse_proxy_ssl_protocols must include TLSv1.3" in result.stdout


# --- the scanner against real servers -----------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "k.pem", directory / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", "/CN=tls.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    """Start `openssl s_server` with the given options; yields a function returning its port."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> int:
        key, cert = certificate
        port = free_port()
        argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
                "-key", str(key), "-www", "-quiet", *options]  # fmt: skip
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(port)
        return port

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


DECIDED = [
    "-cipher", ":".join(k for k in tls.DECIDED_TLS12_SUITES if "ECDSA" in k),
    "-ciphersuites", ":".join(tls.DECIDED_TLS13_SUITES),
    "-groups", "X25519:P-256:P-384",
    "-no_ticket",
]  # fmt: skip


def test_scan_passes_a_server_that_follows_the_decision(server: Any) -> None:
    port = server(*DECIDED, "-serverpref")
    verdict = tls.scan("tls.test", "127.0.0.1", None, port=port)
    assert verdict.decision_problems == {}, verdict.decision_problems
    assert verdict.observation is not None
    assert {o.version for o in verdict.observation.orders} == {"TLSv1.2", "TLSv1.3"}


def test_scan_names_each_deviation_of_a_mozilla_like_server(server: Any) -> None:
    """The client's order (Mozilla's setting), a CBC suite, TLS 1.2 session tickets."""
    port = server(
        "-cipher", ":".join(k for k in tls.DECIDED_TLS12_SUITES if "ECDSA" in k)
        + ":ECDHE-ECDSA-AES256-SHA384",
        "-ciphersuites", ":".join(tls.DECIDED_TLS13_SUITES),
        "-groups", "X25519:P-256:P-384",
    )  # fmt: skip
    problems = tls.scan("tls.test", "127.0.0.1", None, port=port).decision_problems
    assert set(problems) == {
        "suites TLSv1.2",
        "ordre TLSv1.2",
        "ordre TLSv1.3",
        "tickets de session",
    }
    assert "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 (CBC" in problems["suites TLSv1.2"]
    assert "le serveur suit l'ordre du client" in problems["ordre TLSv1.3"]
