"""TLS of a site, scanned by sslyze (C10), held to two references.

- Mozilla's "intermediate" profile (sslyze's own checker): certificate chain, key and
  lifetime, versions, suites, curves, and the known weaknesses (Heartbleed, ROBOT, CCS
  injection, no TLS_FALLBACK_SCSV, no Extended Master Secret, insecure renegotiation).
- The project's decision (docs/decisions/0017-tls-anssi-and-mozilla.md), which follows ANSSI's
  TLS guide (SDE-NT-35 v1.2, 2020) where it is stricter than Mozilla: TLS 1.3 offered, the
  server imposes its order of suites, no 0-RTT, no TLS 1.2 session ticket, no compression, no
  client-initiated renegotiation, and allow-lists of suites and groups: whatever else the
  server accepts fails, named.

`scan` runs sslyze once and two pairs of handshakes for the order of suites; `evaluate`
compares what was observed with the decision and is pure, for the unit tests.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nassl._nassl import OpenSSLError
from nassl.ssl_client import OpenSslVerifyEnum, OpenSslVersionEnum, SslClient
from sslyze import (
    CertificateInfoExtraArgument,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
    TlsResumptionSupportEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    ServerScanResultIncomplete,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)

from educloud.netpin import check_target

# --- The decision (0017) as allow-lists -------------------------------------------------
# The role's meta/argument_specs.yml offers exactly these names as choices; a unit test
# keeps the two equal.

#: Versions the server may accept; TLS 1.3 must be among them (ANSSI R3).
DECIDED_VERSIONS = ("TLSv1.2", "TLSv1.3")
#: TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305 (ANSSI's recommended suites that
#: Mozilla's intermediate profile also lists). OpenSSL name (nginx's ssl_ciphers) -> IANA
#: name (what sslyze reports).
DECIDED_TLS12_SUITES: dict[str, str] = {
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
}
#: TLS 1.3 suites (the same name for OpenSSL, IANA and sslyze).
DECIDED_TLS13_SUITES = (
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
)
#: Key-exchange groups. OpenSSL name (nginx's ssl_ecdh_curve) -> the name sslyze reports.
DECIDED_GROUPS: dict[str, str] = {
    "X25519": "X25519",
    "prime256v1": "secp256r1",
    "secp384r1": "secp384r1",
}

_VERSIONS = (
    ("SSLv2", "ssl_2_0_cipher_suites"),
    ("SSLv3", "ssl_3_0_cipher_suites"),
    ("TLSv1.0", "tls_1_0_cipher_suites"),
    ("TLSv1.1", "tls_1_1_cipher_suites"),
    ("TLSv1.2", "tls_1_2_cipher_suites"),
    ("TLSv1.3", "tls_1_3_cipher_suites"),
)
_EXTRA_SCAN_COMMANDS = {ScanCommand.SESSION_RESUMPTION, ScanCommand.TLS_1_3_EARLY_DATA}


@dataclass(frozen=True)
class ServerOrder:
    """Two handshakes of one version offering the same two suites in opposite orders."""

    version: str
    offered: tuple[str, str]
    #: The suite the server chose when offered (a, b), then (b, a).
    chosen: tuple[str, str]

    @property
    def server_decides(self) -> bool:
        return self.chosen[0] == self.chosen[1]


@dataclass(frozen=True)
class TlsObservation:
    """What a scan saw of one site's TLS, as the decision needs it."""

    #: Version ("TLSv1.2") -> the suites (IANA names) the server accepted with it.
    accepted_suites: dict[str, tuple[str, ...]]
    #: Key-exchange groups the server accepted (sslyze's names).
    groups: tuple[str, ...]
    #: One probe per version with at least two accepted suites.
    orders: tuple[ServerOrder, ...]
    early_data: bool
    #: TLS 1.2 sessions resumed from a ticket (its key outlives the connection: no PFS).
    ticket_resumption: bool
    compression: bool
    client_renegotiation: bool
    #: Scan commands that did not complete: nothing is claimed about them.
    incomplete: tuple[str, ...] = ()

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(v for v, _ in _VERSIONS if self.accepted_suites.get(v))

    def summary(self) -> str:
        """What was observed, in French, for the evidence of the report."""
        parts = [f"versions {', '.join(self.versions) or 'aucune'}"]
        for version in self.versions:
            parts.append(f"suites {version} : {', '.join(self.accepted_suites[version])}")
        parts.append(f"groupes : {', '.join(self.groups) or 'aucun'}")
        for order in self.orders:
            who = "le serveur" if order.server_decides else "le client"
            parts.append(
                f"ordre {order.version} : {order.offered[0]} puis {order.offered[1]} proposées"
                f" → {order.chosen[0]}, ordre inverse → {order.chosen[1]} (choix : {who})"
            )
        parts.append(f"0-RTT {'accepté' if self.early_data else 'refusé'}")
        parts.append(f"tickets TLS 1.2 {'acceptés' if self.ticket_resumption else 'refusés'}")
        parts.append(f"compression {'oui' if self.compression else 'non'}")
        parts.append(
            "renégociation par le client "
            + ("acceptée" if self.client_renegotiation else "refusée")
        )
        return " ; ".join(parts)


@dataclass(frozen=True)
class TlsVerdict:
    site: str
    #: Mozilla intermediate: what sslyze's checker found wrong ({} = compliant).
    problems: dict[str, str]
    accepted_versions: tuple[str, ...]
    #: Decision 0017: what deviates from it ({} = compliant).
    decision_problems: dict[str, str] = field(default_factory=dict)
    observation: TlsObservation | None = None


def _why(suite: str) -> str:
    """Why a TLS 1.2 suite is outside the decision, in a word the reader can look up."""
    if suite.startswith("TLS_RSA_"):
        return "sans confidentialité persistante"
    if suite.startswith(("TLS_DHE_", "TLS_EDH_")):
        return "DHE, dégradé selon l'ANSSI"
    if "_CBC_" in suite:
        return "CBC, dégradé selon l'ANSSI"
    return "hors de la liste décidée"


def evaluate(observation: TlsObservation) -> dict[str, str]:
    """Every way `observation` deviates from decision 0017, named ({} = compliant)."""
    problems: dict[str, str] = {}
    if observation.incomplete:
        problems["scan incomplet"] = (
            f"non observé : {', '.join(observation.incomplete)} (rien n'est affirmé)"
        )
    versions = observation.versions
    extra_versions = [v for v in versions if v not in DECIDED_VERSIONS]
    if extra_versions:
        problems["versions"] = f"{', '.join(extra_versions)} acceptée(s) ; seules TLS 1.2 et 1.3"
    if "TLSv1.3" not in versions:
        problems["TLS 1.3"] = "non proposé (l'ANSSI le veut, R3)"
    allowed = {
        "TLSv1.2": set(DECIDED_TLS12_SUITES.values()),
        "TLSv1.3": set(DECIDED_TLS13_SUITES),
    }
    for version, decided in allowed.items():
        outside = [s for s in observation.accepted_suites.get(version, ()) if s not in decided]
        if outside:
            named = ", ".join(
                f"{s} ({_why(s)})" if version == "TLSv1.2" else s for s in sorted(outside)
            )
            problems[f"suites {version}"] = f"hors de la décision : {named}"
    extra_groups = sorted(set(observation.groups) - set(DECIDED_GROUPS.values()))
    if extra_groups:
        problems["groupes"] = f"hors de la décision : {', '.join(extra_groups)}"
    for order in observation.orders:
        if not order.server_decides:
            problems[f"ordre {order.version}"] = (
                f"le serveur suit l'ordre du client : {order.offered[0]} puis"
                f" {order.offered[1]} proposées → {order.chosen[0]} ; ordre inverse →"
                f" {order.chosen[1]}"
            )
    if observation.early_data:
        problems["0-RTT"] = "données précoces (early data) acceptées en TLS 1.3"
    if observation.ticket_resumption:
        problems["tickets de session"] = (
            "sessions TLS 1.2 reprises par ticket (sa clé défait la confidentialité persistante)"
        )
    if observation.compression:
        problems["compression"] = "compression TLS acceptée (CRIME)"
    if observation.client_renegotiation:
        problems["renégociation"] = "renégociation à l'initiative du client acceptée"
    return problems


def _handshake(site: str, address: str, port: int, version: str, suites: tuple[str, str]) -> str:
    """The suite the server chooses when offered `suites` in this order (OpenSSL names)."""
    with socket.create_connection((address, port), timeout=10) as sock:
        if version == "TLSv1.3":
            client = SslClient(
                ssl_version=OpenSslVersionEnum.TLSV1_3,
                underlying_socket=sock,
                ssl_verify=OpenSslVerifyEnum.NONE,
            )
            client.set_ciphersuites(":".join(suites))
        else:
            client = SslClient(
                ssl_version=OpenSslVersionEnum.TLSV1_2,
                underlying_socket=sock,
                ssl_verify=OpenSslVerifyEnum.NONE,
            )
            client.set_cipher_list(":".join(suites))
        client.set_tlsext_host_name(site)
        # Only the choice of suite is observed here; sslyze validates the certificate.
        client.do_handshake()
        chosen = client.get_current_cipher_name()
        # The server may close first; the choice is already known.
        with contextlib.suppress(OSError, OpenSSLError):
            client.shutdown()
        return chosen


def probe_order(
    site: str, address: str, port: int, version: str, suites: tuple[str, str]
) -> ServerOrder:
    """Offer two suites the server accepts in both orders: a server that imposes its order
    chooses the same one twice."""
    reverse = (suites[1], suites[0])
    chosen = (
        _handshake(site, address, port, version, suites),
        _handshake(site, address, port, version, reverse),
    )
    return ServerOrder(version, suites, chosen)


def _completed(scan_result: Any, command: ScanCommand) -> Any:
    attempt = getattr(scan_result, command.value)
    if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
        return None
    return attempt.result


def _observe(scan_result: Any, site: str, address: str, port: int) -> TlsObservation:
    incomplete: list[str] = []
    accepted: dict[str, tuple[str, ...]] = {}
    openssl_names: dict[str, list[str]] = {}
    for version, attribute in _VERSIONS:
        result = _completed(scan_result, ScanCommand(attribute))
        if result is None:
            incomplete.append(attribute)
            continue
        suites = [a.cipher_suite for a in result.accepted_cipher_suites]
        if suites:
            accepted[version] = tuple(s.name for s in suites)
            openssl_names[version] = [s.openssl_name for s in suites]
    curves = _completed(scan_result, ScanCommand.ELLIPTIC_CURVES)
    if curves is None:
        incomplete.append(ScanCommand.ELLIPTIC_CURVES.value)
    groups = tuple(c.name for c in (curves.supported_curves or [])) if curves else ()
    early = _completed(scan_result, ScanCommand.TLS_1_3_EARLY_DATA)
    if early is None and "TLSv1.3" in accepted:
        incomplete.append(ScanCommand.TLS_1_3_EARLY_DATA.value)
    resumption = _completed(scan_result, ScanCommand.SESSION_RESUMPTION)
    if resumption is None and "TLSv1.2" in accepted:
        incomplete.append(ScanCommand.SESSION_RESUMPTION.value)
    compression = _completed(scan_result, ScanCommand.TLS_COMPRESSION)
    if compression is None:
        incomplete.append(ScanCommand.TLS_COMPRESSION.value)
    renegotiation = _completed(scan_result, ScanCommand.SESSION_RENEGOTIATION)
    if renegotiation is None:
        incomplete.append(ScanCommand.SESSION_RENEGOTIATION.value)
    orders = []
    for version in ("TLSv1.2", "TLSv1.3"):
        names = sorted(set(openssl_names.get(version, [])))
        if len(names) >= 2:
            try:
                orders.append(probe_order(site, address, port, version, (names[0], names[1])))
            except (OSError, OpenSSLError) as exc:
                incomplete.append(f"ordre des suites {version} ({exc})")
    tickets = {
        TlsResumptionSupportEnum.FULLY_SUPPORTED,
        TlsResumptionSupportEnum.PARTIALLY_SUPPORTED,
    }
    return TlsObservation(
        accepted_suites=accepted,
        groups=groups,
        orders=tuple(orders),
        early_data=bool(early and early.supports_early_data),
        ticket_resumption=bool(resumption and resumption.tls_ticket_resumption_result in tickets),
        compression=bool(compression and compression.supports_compression),
        client_renegotiation=bool(
            renegotiation and renegotiation.is_vulnerable_to_client_renegotiation_dos
        ),
        incomplete=tuple(incomplete),
    )


def scan(site: str, address: str, ca_file: Path | None, port: int = 443) -> TlsVerdict:
    """Scan `site` at `address` (SNI and certificate name stay `site`)."""
    address = check_target(address)
    location = ServerNetworkLocation(hostname=site, port=port, ip_address=address)
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file) if ca_file else None
    )
    scanner = Scanner()
    scanner.queue_scans(
        [
            ServerScanRequest(
                server_location=location,
                scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | _EXTRA_SCAN_COMMANDS,
                scan_commands_extra_arguments=extra,
            )
        ]
    )
    result = next(iter(scanner.get_results()))
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        unreachable = {"connectivity": str(result.connectivity_error_trace)}
        return TlsVerdict(site, unreachable, (), dict(unreachable))
    observation = _observe(result.scan_result, site, address, port)
    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    problems: dict[str, str] = {}
    try:
        check_server_against_tls_configuration(result, profile)
    except ServerNotCompliantWithTlsConfiguration as exc:
        problems = dict(exc.issues)
    except ServerScanResultIncomplete as exc:
        problems = {"incomplete": str(exc)}
    return TlsVerdict(site, problems, observation.versions, evaluate(observation), observation)
