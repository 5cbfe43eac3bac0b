"""Behaviour of the reverse_proxy role on a converged host (testinfra; charter C3, C10).

Run by molecule on its temporary host and by `educloud summary` against an inventory: the
sites come from the host's `reverse_proxy_sites`, and every request is made on the host itself
against 127.0.0.1 (or the host's own address), with the name pinned by curl --resolve.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any

import pytest

from educloud.hostscope import skip_unless_in_group

GROUP = "reverse_proxy"
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; "
    "object-src 'none'; base-uri 'self'"
)
# CSP source expressions that name no origin: keywords, nonces, hashes, same-document schemes.
SOURCE_WITHOUT_ORIGIN = re.compile(
    r"^('self'|'none'|'unsafe-inline'|'unsafe-eval'|'unsafe-hashes'|'strict-dynamic'"
    r"|'wasm-unsafe-eval'|'report-sample'|'nonce-[A-Za-z0-9+/=_-]+'"
    r"|'sha(256|384|512)-[A-Za-z0-9+/=_-]+'|data:|blob:)$"
)
# Directives whose values are not sources (no origin can hide in them).
NON_SOURCE_DIRECTIVES = {
    "sandbox",
    "upgrade-insecure-requests",
    "block-all-mixed-content",
    "require-trusted-types-for",
    "trusted-types",
}


def _variables(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()


_RENDERED: dict[tuple[str, str], Any] = {}


def _setting(host: Any, name: str, default: Any) -> Any:
    """A role variable as the play sees it: inventory values may be templates
    ("{{ educloud_admin_networks }}"), which get_variables() leaves unrendered."""
    key = (str(_variables(host).get("inventory_hostname")), name)
    if key not in _RENDERED:
        result = host.ansible("ansible.builtin.debug", f"var={name}", check=False)
        value = result.get(name, default)
        # Undefined (a role default the inventory does not set): older and newer
        # ansible-core spell it differently.
        undefined = isinstance(value, str) and (
            value == "VARIABLE IS NOT DEFINED!" or value.startswith("<< error")
        )
        _RENDERED[key] = default if undefined else value
    return _RENDERED[key]


@pytest.fixture(autouse=True)
def _reverse_proxy_hosts_only(host: Any) -> None:
    """Skip hosts outside the reverse_proxy group; molecule platforms (mol-*) are in scope."""
    skip_unless_in_group(_variables(host), GROUP)


@pytest.fixture
def sites(host: Any) -> list[dict[str, Any]]:
    configured = _setting(host, "reverse_proxy_sites", [])
    if not configured:
        pytest.skip("reverse_proxy_sites is empty on this host")
    return list(configured)


def _internal_ca(host: Any) -> bool:
    return _setting(host, "reverse_proxy_certificate_source", "internal_ca") == "internal_ca"


def _ca_dir(host: Any) -> str:
    return str(_setting(host, "reverse_proxy_ca_dir", "/etc/educloud/ca"))


@pytest.fixture
def ca_file(host: Any) -> str:
    """The CA bundle curl and openssl trust: the internal CA, or the system's public roots."""
    if _internal_ca(host):
        return f"{_ca_dir(host)}/ca.crt"
    return "/etc/ssl/certs/ca-certificates.crt"


def _curl(host: Any, ca: str, url: str, name: str, address: str = "127.0.0.1", *extra: str):
    """One request with its response headers on stdout; 'status' line first."""
    port = "80" if url.startswith("http://") else "443"
    argv = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--resolve",
        f"{name}:{port}:{address}",
        "--cacert",
        ca,
        *extra,
        url,
    ]
    return host.run(shlex.join(argv))


def _status(response: Any) -> int:
    first = response.stdout.splitlines()[0] if response.stdout else ""
    match = re.match(r"^HTTP/[0-9.]+ ([0-9]{3})", first)
    assert match, f"no HTTP status (rc={response.rc}): {response.stdout!r} {response.stderr!r}"
    return int(match.group(1))


def _headers(response: Any) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for line in response.stdout.splitlines()[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    return headers


def _openssl(host: Any, ca: str, name: str, *options: str):
    # SECLEVEL=0 lets the client offer TLS 1.0/1.1, so a refusal comes from the server.
    argv = [
        "openssl",
        "s_client",
        "-connect",
        "127.0.0.1:443",
        "-servername",
        name,
        "-CAfile",
        ca,
        "-verify_return_error",
        *options,
    ]
    return host.run(f"echo | timeout 10 {shlex.join(argv)} 2>&1")


def _lab_address(host: Any) -> str:
    address = _variables(host).get("ansible_host")
    if not address or not re.match(r"^[0-9.]+$", str(address)):
        pytest.skip("the host has no IPv4 ansible_host to send requests from")
    return str(address)


def test_nginx_enabled_and_running(host):
    nginx = host.service("nginx")
    assert nginx.is_enabled
    assert nginx.is_running


@pytest.mark.parametrize("port", [80, 443])
def test_port_listening(host, port):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


@pytest.mark.parametrize("port", [80, 443])
def test_firewall_opens_port(host, port):
    elements = host.check_output("nft list set inet educloud inbound_tcp")
    assert re.search(rf"elements = \{{[^}}]*\b{port}\b", elements), elements


def test_http_redirects_to_https(host, sites, ca_file):
    for site in sites:
        name = site["name"]
        response = _curl(host, ca_file, f"http://{name}/probe?x=1", name)
        assert _status(response) == 301, f"{name}: {response.stdout}"
        assert _headers(response)["location"] == [f"https://{name}/probe?x=1"], name


@pytest.mark.parametrize("version", ["tls1", "tls1_1"])
def test_old_tls_versions_refused(host, sites, ca_file, version):
    for site in sites:
        result = _openssl(
            host, ca_file, site["name"], f"-{version}", "-cipher", "DEFAULT:@SECLEVEL=0"
        )
        assert result.rc != 0, f"{site['name']} accepted {version}: {result.stdout}"
        # The server's alert, not a client that never offered the version.
        assert "alert protocol version" in result.stdout, result.stdout


@pytest.mark.parametrize(("version", "protocol"), [("tls1_2", "TLSv1.2"), ("tls1_3", "TLSv1.3")])
def test_current_tls_versions_accepted(host, sites, ca_file, version, protocol):
    for site in sites:
        result = _openssl(host, ca_file, site["name"], f"-{version}")
        assert result.rc == 0, f"{site['name']} refused {version}: {result.stdout}"
        assert f"New, {protocol}, Cipher is" in result.stdout, result.stdout
        assert "Verify return code: 0 (ok)" in result.stdout, result.stdout


def test_tls12_refuses_ciphers_without_forward_secrecy_or_aead(host, sites, ca_file):
    weak = "AES128-GCM-SHA256:AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA256"
    for site in sites:
        result = _openssl(host, ca_file, site["name"], "-tls1_2", "-cipher", weak)
        assert result.rc != 0, f"{site['name']} accepted a weak cipher: {result.stdout}"


def test_unknown_name_gets_no_certificate(host, ca_file):
    result = _openssl(host, ca_file, "not-a-site.invalid", "-tls1_3")
    assert result.rc != 0, result.stdout


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
    ],
)
def test_security_header_on_every_site(host, sites, ca_file, header, expected):
    for site in sites:
        name = site["name"]
        response = _curl(host, ca_file, f"https://{name}/", name)
        _status(response)
        assert _headers(response).get(header) == [expected], f"{name}: {response.stdout}"


@pytest.mark.parametrize("feature", ["camera", "microphone", "geolocation", "interest-cohort"])
def test_permissions_policy_denies(host, sites, ca_file, feature):
    for site in sites:
        name = site["name"]
        policy = _headers(_curl(host, ca_file, f"https://{name}/", name)).get("permissions-policy")
        assert policy and len(policy) == 1, f"{name}: {policy}"
        assert f"{feature}=()" in [part.strip() for part in policy[0].split(",")], policy


def test_csp_is_the_sites_and_names_no_third_party_origin(host, sites, ca_file):
    for site in sites:
        name = site["name"]
        policies = _headers(_curl(host, ca_file, f"https://{name}/", name)).get(
            "content-security-policy", []
        )
        expected = " ".join(site.get("csp", DEFAULT_CSP).split())
        assert expected in [" ".join(p.split()) for p in policies], f"{name}: {policies}"
        for policy in policies:
            for directive in filter(None, (d.strip() for d in policy.split(";"))):
                directive_name, *values = directive.split()
                if directive_name in NON_SOURCE_DIRECTIVES:
                    continue
                if directive_name in {"report-uri", "report-to"}:
                    assert all(v.startswith("/") or "." not in v for v in values), directive
                    continue
                foreign = [v for v in values if not SOURCE_WITHOUT_ORIGIN.match(v)]
                assert not foreign, f"{name}: {directive_name} allows {foreign}"


def test_headers_also_on_errors_and_redirects(host, sites, ca_file):
    name = sites[0]["name"]
    for response in (
        _curl(host, ca_file, f"http://{name}/", name),
        _curl(host, ca_file, f"https://{name}/educloud-no-such-page", name),
    ):
        _status(response)
        headers = _headers(response)
        for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
            assert header in headers, f"{header} missing: {response.stdout}"


def test_server_header_has_no_version(host, sites, ca_file):
    for site in sites:
        name = site["name"]
        response = _curl(host, ca_file, f"https://{name}/", name)
        assert _headers(response).get("server") == ["nginx"], response.stdout


def test_denied_paths_answer_403(host, sites, ca_file):
    checked = 0
    for site in sites:
        for path in site.get("deny_paths", []):
            response = _curl(host, ca_file, f"https://{site['name']}{path}", site["name"])
            assert _status(response) == 403, f"{site['name']}{path}: {response.stdout}"
            checked += 1
    if not checked:
        pytest.skip("no site has deny_paths")


def test_restricted_site_refuses_other_sources(host, sites, ca_file):
    address = _lab_address(host)
    restricted = [s for s in sites if s.get("allow_networks")]
    if not restricted:
        pytest.skip("no site has allow_networks")
    for site in restricted:
        if any(_in_network(address, network) for network in site["allow_networks"]):
            continue
        name = site["name"]
        response = _curl(host, ca_file, f"https://{name}/", name, address, "--interface", address)
        assert _status(response) == 403, f"{name} from {address}: {response.stdout}"


def test_restricted_site_serves_allowed_source(host, sites, ca_file):
    allowed = [
        s
        for s in sites
        if s.get("allow_networks") and any(_in_network("127.0.0.1", n) for n in s["allow_networks"])
    ]
    if not allowed:
        pytest.skip("no site allows 127.0.0.1")
    for site in allowed:
        name = site["name"]
        status = _status(_curl(host, ca_file, f"https://{name}/", name))
        # The upstream answered (not the proxy's 403, nor its 502/504 for a dead upstream).
        assert status != 403, name
        assert status < 500, f"{name}: {status}"


def test_upstream_serves_through_the_proxy(host, sites, ca_file):
    for site in sites:
        if site.get("allow_networks") and not any(
            _in_network("127.0.0.1", n) for n in site["allow_networks"]
        ):
            continue
        name = site["name"]
        status = _status(_curl(host, ca_file, f"https://{name}/", name))
        assert status < 500, f"{name}: proxy answered {status}"


def test_ca_private_key_readable_by_root_only(host):
    if not _internal_ca(host):
        pytest.skip("certificates do not come from the internal CA")
    key = host.file(f"{_ca_dir(host)}/ca.key")
    assert key.exists
    assert key.user == "root"
    assert key.group == "root"
    assert key.mode == 0o600


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
