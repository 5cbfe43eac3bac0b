"""Behaviour of the reverse_proxy role on a converged host (testinfra; charter C3, C6, C9, C10).

Run by molecule on its temporary host and by `educloud summary` against an inventory: the
sites come from the host's `reverse_proxy_sites`, and every request is made on the host itself
against 127.0.0.1 (or the host's own address), with the name pinned by curl --resolve.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest

from educloud.hostscope import policies, setting, skip_unless_in_group

GROUP = "reverse_proxy"
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)
# CSP source expressions that name no origin: keywords, nonces, hashes, same-document schemes.
SOURCE_WITHOUT_ORIGIN = re.compile(
    r"^('self'|'none'|'unsafe-inline'|'unsafe-eval'|'unsafe-hashes'|'strict-dynamic'"
    r"|'wasm-unsafe-eval'|'report-sample'|'nonce-[A-Za-z0-9+/=_-]+'"
    r"|'sha(256|384|512)-[A-Za-z0-9+/=_-]+'|data:|blob:)$"
)
# The headers every response carries, the privacy notice included.
SECURITY_HEADERS = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
]
# The privacy notice (C6, C9): its sections' ids and the French wording of the retention policy.
NOTICE_SECTIONS = ["conservation", "hebergement", "droits", "signalement", "registre"]
STARTS_FR = {
    "record": "à partir de l'enregistrement",
    "deletion": "après la suppression",
    "departure": "après le départ de l'utilisateur",
    "contract_end": "après la fin du contrat",
}
AT_EXPIRY_FR = {"erase": "effacement", "archive": "archivage", "anonymise": "anonymisation"}
RIGHTS = ["accès", "rectification", "effacement", "limitation", "opposition", "portabilité"]
# The converge playbook's stand-in upstream: only molecule platforms have it.
MOLECULE_UPSTREAM = "mol-upstream"
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


def _setting(host: Any, name: str, default: Any) -> Any:
    """A role variable as the play sees it ("{{ educloud_admin_networks }}" rendered)."""
    return setting(host, name, default)


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


def _chosen_suite(output: str) -> str:
    match = re.search(r"New, TLSv1\.[23], Cipher is (\S+)", output)
    assert match, output
    return match.group(1)


@pytest.mark.parametrize(
    ("version", "option", "first", "second"),
    [
        (
            "tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
        ),
        ("tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
    ],
)
def test_server_imposes_its_suite_order(host, sites, ca_file, version, option, first, second):
    """Decision 0017 (ANSSI): the same two suites offered in both orders, the same choice."""
    for site in sites:
        chosen = set()
        for offered in (f"{first}:{second}", f"{second}:{first}"):
            result = _openssl(host, ca_file, site["name"], f"-{version}", option, offered)
            assert result.rc == 0, f"{site['name']} refused {offered}: {result.stdout}"
            chosen.add(_chosen_suite(result.stdout))
        assert len(chosen) == 1, f"{site['name']} followed the client's order: {chosen}"


def test_tls13_refuses_suites_outside_the_decision(host, sites, ca_file):
    for site in sites:
        result = _openssl(
            host, ca_file, site["name"], "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"
        )
        assert result.rc != 0, f"{site['name']} accepted TLS_AES_128_CCM_SHA256: {result.stdout}"


def test_unknown_name_gets_no_certificate(host, ca_file):
    result = _openssl(host, ca_file, "not-a-site.invalid", "-tls1_3")
    assert result.rc != 0, result.stdout


@pytest.mark.parametrize(("header", "expected"), SECURITY_HEADERS)
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
    # The deployment's own sites are not third parties (Keycloak's login form, for one,
    # hands the browser back to Nextcloud's site: form-action names it).
    own = {f"https://{s['name']}" for s in sites}
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
                foreign = [v for v in values if not SOURCE_WITHOUT_ORIGIN.match(v) and v not in own]
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


def test_allowed_paths_only_are_forwarded(host, sites, ca_file):
    checked = 0
    for site in sites:
        if not site.get("allow_paths"):
            continue
        name = site["name"]
        # Outside the list, and the audit's encoded climb out of it (issue #29): 404 from nginx.
        for path in ("/educloud-not-allowed/", "/admin/realms/..%2f..%2f", "/x/..%2fadmin/"):
            response = _curl(
                host, ca_file, f"https://{name}{path}", name, "127.0.0.1", "--path-as-is"
            )
            assert _status(response) == 404, f"{name}{path}: {response.stdout}"
            checked += 1
    if not checked:
        pytest.skip("no site has allow_paths")


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_made_up_host_gets_421(host, sites, ca_file, scheme):
    # A Host no site serves, on a connection opened for a real site (its SNI): 421, never
    # nginx's welcome page nor a redirect to the made-up name (issue #29).
    name = sites[0]["name"]
    response = _curl(
        host, ca_file, f"{scheme}://{name}/", name, "127.0.0.1", "-H", "Host: evil.example"
    )
    assert _status(response) == 421, response.stdout
    assert "evil.example" not in response.stdout


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


# Each PEM private key under the directories an operator would use, as "<SHA-256 of its public
# key> <path>" (a key openssl cannot read hashes as the empty string).
_PRIVATE_KEYS_BY_PUBLIC_KEY = (
    "find /etc /root /home /srv /opt /usr/local /tmp /var/tmp /var/backups -xdev -type f"
    " -size -64k -print0 2>/dev/null"
    " | xargs -0 -r grep -lsZ -e '-----BEGIN [A-Z ]*PRIVATE KEY-----'"
    " | while IFS= read -r -d '' f; do"
    ' printf "%s %s\\n" "$(openssl pkey -in "$f" -pubout -outform DER 2>/dev/null'
    ' | sha256sum | cut -d" " -f1)" "$f"; done'
)


def test_no_ca_private_key_on_the_host(host):
    """The CA's key stays on the controller (issue #29): not at the path older versions used,
    nor anywhere else on the host (a key whose public half is the CA certificate's)."""
    if not _internal_ca(host):
        pytest.skip("certificates do not come from the internal CA")
    assert not host.file(f"{_ca_dir(host)}/ca.key").exists
    ca_public = host.check_output(
        f"openssl x509 -in {shlex.quote(_ca_dir(host))}/ca.crt -noout -pubkey"
        " | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1"
    )
    found = host.check_output(_PRIVATE_KEYS_BY_PUBLIC_KEY).splitlines()
    assert any(line.endswith(".key") for line in found), "the scan saw no key at all"
    assert not [line for line in found if line.startswith(ca_public + " ")]


def test_ca_constrained_to_the_sites_names(host, sites):
    """The CA certificate names, critically, the names it may vouch for: each site's own name
    (not its parent domain) unless reverse_proxy_ca_permitted_domains says otherwise, e-mail
    addresses and URIs only under the reserved .invalid, and no IP address; and it is for TLS
    servers only."""
    if not _internal_ca(host):
        pytest.skip("certificates do not come from the internal CA")
    text = host.check_output(
        f"openssl x509 -in {shlex.quote(_ca_dir(host))}/ca.crt -noout"
        " -ext nameConstraints,extendedKeyUsage"
    )
    assert "Name Constraints: critical" in text
    permitted_part, excluded_part = text.split("Name Constraints")[1].split("Excluded")
    permitted = re.findall(r"DNS:(\S+)", permitted_part)
    assert permitted
    if _setting(host, "reverse_proxy_ca_permitted_domains", []):
        for site in sites:
            assert any(site["name"] == d or site["name"].endswith(f".{d}") for d in permitted)
    else:
        assert {site["name"] for site in sites} <= set(permitted)
    assert re.findall(r"(email|URI):(\S+)", permitted_part) == [
        ("email", ".invalid"),
        ("URI", ".invalid"),
    ]
    assert "IP:0.0.0.0/0.0.0.0" in excluded_part
    assert "Extended Key Usage" in text, "the CA certificate has no extended key usage"
    usages = text.split("Extended Key Usage")[1].split("X509v3")[0]
    assert usages.split(":", 1)[1].split() == ["TLS", "Web", "Server", "Authentication"]


def _in_network(address: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


# The privacy notice (C6) and the contact for reporting illicit content (C9).


@dataclass(frozen=True)
class _Response:
    status: int
    headers: dict[str, list[str]]
    body: str


class _Page(HTMLParser):
    """What the notice's checks read from a page: each tag with its attributes and the ids of
    the elements around it, the text of each element that has an id, and the cells of each
    table row that has an id."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    )

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str], frozenset[str]]] = []
        self.text: dict[str, str] = {}
        self.rows: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(html)
        self.close()

    def _open_ids(self) -> frozenset[str]:
        return frozenset(element_id for _, element_id in self._open if element_id)

    def _row(self) -> str | None:
        return next((i for t, i in reversed(self._open) if t == "tr"), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        self.tags.append((tag, attributes, self._open_ids()))
        if tag in self.VOID:
            return
        element_id = attributes.get("id")
        self._open.append((tag, element_id))
        if element_id:
            self.text.setdefault(element_id, "")
            if tag == "tr":
                self.rows[element_id] = []
        row = self._row()
        if tag in ("td", "th") and row:
            self.rows[row].append("")

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element_id in self._open_ids():
            self.text[element_id] += data
        row = self._row()
        if row and self.rows[row] and any(t in ("td", "th") for t, _ in self._open):
            self.rows[row][-1] += data

    def section(self, element_id: str) -> str:
        return " ".join(self.text.get(element_id, "").split())

    def cells(self, row_id: str) -> list[str]:
        return [" ".join(cell.split()) for cell in self.rows.get(row_id, [])]


def _get(host: Any, ca: str, name: str, path: str, address: str = "127.0.0.1") -> _Response:
    """GET https://name/path on the host: headers on stderr, body on stdout."""
    argv = [
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-D",
        "/dev/stderr",
        "--resolve",
        f"{name}:443:{address}",
        "--cacert",
        ca,
        f"https://{name}{path}",
    ]
    result = host.run(shlex.join(argv))
    lines = result.stderr.splitlines()
    match = re.match(r"^HTTP/[0-9.]+ ([0-9]{3})", lines[0] if lines else "")
    assert match, f"no HTTP status from {name}{path} (rc={result.rc}): {result.stderr!r}"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    return _Response(int(match.group(1)), headers, result.stdout)


def _reachable_from_loopback(site: dict[str, Any]) -> bool:
    networks = site.get("allow_networks")
    return not networks or any(_in_network("127.0.0.1", n) for n in networks)


@pytest.fixture
def notice_path(host: Any) -> str:
    return str(_setting(host, "reverse_proxy_privacy_notice_path", "/confidentialite"))


@pytest.fixture
def notice(host: Any) -> dict[str, Any]:
    value = _setting(host, "reverse_proxy_privacy_notice", {})
    assert value, "reverse_proxy_privacy_notice is not set for this host (C6)"
    return dict(value)


@pytest.fixture
def notice_pages(host: Any, sites, ca_file, notice_path) -> dict[str, _Response]:
    """The notice as each site serves it (sites closed to 127.0.0.1 are left out)."""
    pages = {
        site["name"]: _get(host, ca_file, site["name"], notice_path)
        for site in sites
        if _reachable_from_loopback(site)
    }
    if not pages:
        pytest.skip("no site is reachable from the host itself")
    return pages


def _parsed(pages: dict[str, _Response]) -> dict[str, _Page]:
    for name, page in pages.items():
        assert page.status == 200, f"{name}: notice answered {page.status}"
    return {name: _Page(page.body) for name, page in pages.items()}


def test_privacy_notice_served_in_french_on_every_site(notice_pages):
    for name, page in notice_pages.items():
        assert page.status == 200, f"{name}: {page.status} {page.headers}"
        assert page.headers.get("content-type") == ["text/html; charset=utf-8"], name
        assert '<html lang="fr">' in page.body, name
        assert '<meta charset="utf-8">' in page.body, name
        assert "Notice d'information sur la protection des données" in page.body, name


@pytest.mark.parametrize(("header", "expected"), SECURITY_HEADERS)
def test_privacy_notice_carries_the_security_headers(notice_pages, header, expected):
    for name, page in notice_pages.items():
        assert page.headers.get(header) == [expected], f"{name}: {page.headers}"


def test_privacy_notice_carries_the_sites_csp(sites, notice_pages):
    for site in sites:
        if site["name"] not in notice_pages:
            continue
        policies = notice_pages[site["name"]].headers.get("content-security-policy", [])
        expected = " ".join(site.get("csp", DEFAULT_CSP).split())
        assert [" ".join(p.split()) for p in policies] == [expected], site["name"]


def test_privacy_notice_has_its_sections(notice_pages):
    for name, page in _parsed(notice_pages).items():
        missing = [s for s in NOTICE_SECTIONS if not page.section(s)]
        assert not missing, f"{name}: no element with id {missing}"


def test_privacy_notice_lists_every_retention_category(host, notice_pages):
    categories = policies(host.ansible.get_variables()).retention
    for name, page in _parsed(notice_pages).items():
        rows = {r for r in page.rows if r.startswith("conservation-")}
        assert rows == {f"conservation-{c}" for c in categories}, name
        for category, rule in categories.items():
            days = rule["retention_days"]
            assert page.cells(f"conservation-{category}") == [
                " ".join(rule["description"].split()),
                f"{days} jour{'s' if days > 1 else ''}",
                STARTS_FR[rule["starts"]],
                AT_EXPIRY_FR[rule["at_expiry"]],
                " ".join(rule["legal_basis"].split()),
            ], f"{name}: {category}"


def test_privacy_notice_states_hosting_in_france(host, notice_pages):
    hosting = policies(host.ansible.get_variables()).raw["hosting"]
    approved = {p["id"]: p for p in hosting["providers"]}
    declared = _setting(host, "reverse_proxy_privacy_hosting_declarations", []) or [
        _setting(host, "educloud_hosting", None)
    ]
    declared_ids = {d["provider"] for d in declared if isinstance(d, dict)}
    for name, page in _parsed(notice_pages).items():
        assert "uniquement en France" in page.section("hebergement"), name
        shown = {r.removeprefix("hebergement-") for r in page.rows if r.startswith("hebergement-")}
        assert shown, f"{name}: the notice names no hosting provider"
        assert shown <= approved.keys(), f"{name}: providers {shown - approved.keys()} not approved"
        assert declared_ids <= shown, f"{name}: declared providers {declared_ids - shown} missing"
        for provider in shown:
            provider_name, country, _ = page.cells(f"hebergement-{provider}")
            assert provider_name.startswith(approved[provider]["name"]), name
            assert country == "France", f"{name}: {provider} in {country}"


def test_privacy_notice_names_controller_and_rights(notice, notice_pages):
    dpo = f"mailto:{notice['dpo_email']}"
    for name, page in _parsed(notice_pages).items():
        assert notice["controller_name"] in page.section("responsable"), name
        rights = page.section("droits")
        assert [r for r in RIGHTS if r not in rights] == [], f"{name}: {rights}"
        assert "CNIL" in rights, name
        assert any(
            tag == "a" and attributes.get("href", "").split("?")[0] == dpo and "droits" in around
            for tag, attributes, around in page.tags
        ), f"{name}: no {dpo} link in #droits"


def test_privacy_notice_gives_reporting_contact(notice, notice_pages):
    reporting = f"mailto:{notice['reporting_email']}"
    for name, page in _parsed(notice_pages).items():
        links = [
            attributes.get("href", "")
            for tag, attributes, around in page.tags
            if tag == "a" and "signalement" in around
        ]
        assert reporting in [link.split("?")[0] for link in links], f"{name}: {links}"
        assert "contenu illicite" in page.section("signalement"), name


def test_privacy_notice_loads_nothing_from_elsewhere(host, ca_file, notice_path, notice_pages):
    """No script, frame, image or inline style (the CSP would refuse it, C3); links stay on the
    page, on the site or in a mail client; the stylesheet comes from the same site."""
    for name, page in _parsed(notice_pages).items():
        for tag, attributes, _ in page.tags:
            assert tag not in {"script", "style", "iframe", "img", "object", "embed"}, name
            assert not {"src", "style", "srcset"} & attributes.keys(), f"{name}: <{tag}>"
            href = attributes.get("href", "")
            if href:
                assert re.match(r"^(#|mailto:|/(?!/))", href), f"{name}: <{tag} href={href}>"
        stylesheet = _get(host, ca_file, name, f"{notice_path}.css")
        assert stylesheet.status == 200, f"{name}: stylesheet answered {stylesheet.status}"
        assert stylesheet.headers.get("content-type") == ["text/css"], name


def test_privacy_notice_is_the_static_file(host, notice_pages):
    directory = str(_setting(host, "reverse_proxy_privacy_notice_dir", "/var/www/educloud/privacy"))
    notice_file = host.file(f"{directory}/index.html")
    assert notice_file.user == "root"
    assert notice_file.group == "root"
    assert notice_file.mode == 0o644
    content = notice_file.content_string.rstrip("\n")
    for name, page in notice_pages.items():
        assert page.body.rstrip("\n") == content, f"{name} serves something else than {notice_file}"


@pytest.fixture
def upstream_stopped(host: Any, sites):
    """The molecule stand-in upstream stopped for one test, and answering again after it."""
    upstream = host.service(MOLECULE_UPSTREAM)
    if not upstream.is_running:
        pytest.skip(f"no {MOLECULE_UPSTREAM} service to stop (a molecule platform has one)")
    host.run_expect([0], f"systemctl stop {MOLECULE_UPSTREAM}")
    try:
        yield
    finally:
        host.run_expect([0], f"systemctl start {MOLECULE_UPSTREAM}")
        # Wait until it answers again, so the next checks see the site as it was.
        url = shlex.quote(sites[0]["upstream"] + "/")
        wait = f"until curl -sf -o /dev/null {url}; do sleep 0.2; done"
        host.run_expect([0], shlex.join(["timeout", "15", "sh", "-c", wait]))


def test_privacy_notice_served_while_upstream_down(
    host, sites, ca_file, notice_path, upstream_stopped
):
    for site in filter(_reachable_from_loopback, sites):
        name = site["name"]
        # A path the site forwards (with allow_paths, "/" is the proxy's own 404).
        path = next(iter(site.get("allow_paths", [])), "/")
        assert _get(host, ca_file, name, path).status == 502, f"{name}: the upstream still answers"
        page = _get(host, ca_file, name, notice_path)
        assert page.status == 200, f"{name}: notice answered {page.status} without its upstream"
        assert 'id="signalement"' in page.body, name
