"""TLS of a site checked by sslyze against Mozilla's "intermediate" profile (C10).

ANSSI's TLS guide (v1.2) and Mozilla's intermediate profile agree on TLS 1.2/1.3 with
forward-secret AEAD suites; sslyze does the scanning and the comparison, we only
choose the profile and the trust store (the deployment's own CA in the lab).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslyze import (
    CertificateInfoExtraArgument,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
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


@dataclass(frozen=True)
class TlsVerdict:
    site: str
    problems: dict[str, str]
    accepted_versions: tuple[str, ...]


def scan(site: str, address: str, ca_file: Path | None, port: int = 443) -> TlsVerdict:
    """Scan `site` at `address` (SNI and certificate name stay `site`)."""
    location = ServerNetworkLocation(hostname=site, port=port, ip_address=check_target(address))
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file) if ca_file else None
    )
    scanner = Scanner()
    scanner.queue_scans(
        [
            ServerScanRequest(
                server_location=location,
                scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
                scan_commands_extra_arguments=extra,
            )
        ]
    )
    result = next(iter(scanner.get_results()))
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        return TlsVerdict(site, {"connectivity": str(result.connectivity_error_trace)}, ())
    versions = []
    for version, attempt in (
        ("SSLv2", result.scan_result.ssl_2_0_cipher_suites),
        ("SSLv3", result.scan_result.ssl_3_0_cipher_suites),
        ("TLSv1.0", result.scan_result.tls_1_0_cipher_suites),
        ("TLSv1.1", result.scan_result.tls_1_1_cipher_suites),
        ("TLSv1.2", result.scan_result.tls_1_2_cipher_suites),
        ("TLSv1.3", result.scan_result.tls_1_3_cipher_suites),
    ):
        if attempt.result and attempt.result.accepted_cipher_suites:
            versions.append(version)
    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    problems: dict[str, str] = {}
    try:
        check_server_against_tls_configuration(result, profile)
    except ServerNotCompliantWithTlsConfiguration as exc:
        problems = dict(exc.issues)
    except ServerScanResultIncomplete as exc:
        problems = {"incomplete": str(exc)}
    return TlsVerdict(site, problems, tuple(versions))
