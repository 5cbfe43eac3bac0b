"""Behaviour of the reporting role on a converged host (testinfra; charter C9): the report
service, its form through the reverse proxy, the moderation API.

Run by the retention role's molecule scenario on its temporary host and against an inventory
(tests/run-all.sh: the lab's edu1); conftest.py keeps them to the hosts of the group
data_rights. Requests are made on the host itself with curl through the reverse proxy, each test
from its own random loopback address (127.x.y.z): nginx and the service limit reports per
client address, so repeated runs never share a quota.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import re
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from educloud.lab.settings import BRIDGE_ADDRESS, SMTP_SINK_PORT, LabPaths

SERVICE = "educloud-reports"
# Exposure score of `systemd-analyze security` (0 = fully sandboxed, 10 = nothing); the unit
# scores 1.3 on Debian 12. A unit losing its sandboxing crosses this.
MAX_EXPOSURE = 2.5
# The form's token must be this old before a post is accepted (reports/form.py TOKEN_MIN_AGE).
TOKEN_MIN_AGE = 3
Setting = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, list[str]]
    body: str


@dataclass(frozen=True)
class Proxy:
    """The reverse proxy in front of the service on this host, as its variables describe it."""

    host: Any
    ca: str
    public_site: str
    admin_site: str
    admin_networks: list[str]
    path: str

    def request(self, site: str, path: str, *curl_args: str, source: str = "127.0.0.1") -> Response:
        """One HTTPS request from `source` on the host: headers on stderr, body on stdout."""
        argv = [
            "curl",
            "-sS",
            "--max-time",
            "15",
            "-D",
            "/dev/stderr",
            "--resolve",
            f"{site}:443:127.0.0.1",
            "--cacert",
            self.ca,
            "--interface",
            source,
            *curl_args,
            f"https://{site}{path}",
        ]
        result = self.host.run(shlex.join(argv))
        return _response(result)


def _response(result: Any) -> Response:
    blocks = re.split(r"\r?\n\r?\n", result.stderr.strip())
    lines = blocks[-1].splitlines() if blocks else []
    match = re.match(r"^HTTP/[0-9.]+ ([0-9]{3})", lines[0] if lines else "")
    assert match, f"no HTTP status (rc={result.rc}): {result.stderr!r}"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.setdefault(key.strip().lower(), []).append(value.strip())
    return Response(int(match.group(1)), headers, result.stdout)


def _fresh_source() -> str:
    """A loopback address no earlier run used: its own quota in nginx and in the service."""
    octets = [random.randint(16, 250), random.randint(0, 255), random.randint(1, 254)]  # noqa: S311
    return "127." + ".".join(map(str, octets))


@pytest.fixture
def proxy(host: Any, setting: Setting) -> Proxy:
    variables = host.ansible.get_variables()
    if "reverse_proxy" not in variables.get("group_names", []) and not str(
        variables.get("inventory_hostname", "")
    ).startswith("mol-"):
        pytest.skip("the reverse proxy is on another host: reporting is checked there")
    if not setting("reverse_proxy_reporting_upstream", ""):
        pytest.skip("reverse_proxy_reporting_upstream is off on this host")
    sites = list(setting("reverse_proxy_sites", []))
    public = [s["name"] for s in sites if not s.get("allow_networks")]
    admin_name = str(setting("reverse_proxy_reporting_admin_site", ""))
    admin = [s for s in sites if s["name"] == admin_name]
    if not public:
        pytest.skip("no public site")
    ca_dir = str(setting("reverse_proxy_ca_dir", "/etc/educloud/ca"))
    internal = setting("reverse_proxy_certificate_source", "internal_ca") == "internal_ca"
    return Proxy(
        host=host,
        ca=f"{ca_dir}/ca.crt" if internal else "/etc/ssl/certs/ca-certificates.crt",
        public_site=public[0],
        admin_site=admin_name,
        admin_networks=list(admin[0].get("allow_networks", [])) if admin else [],
        path=str(setting("reverse_proxy_reporting_path", "/signalement")),
    )


@pytest.fixture
def moderation_token(setting: Setting) -> str:
    token = str(setting("reporting_moderation_token", ""))
    assert token, "reporting_moderation_token is not set for this host"
    return token


class _Form(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, dict[str, str]] = {}
        self.forms: list[dict[str, str]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "form":
            self.forms.append(attributes)
        if tag in ("input", "textarea") and attributes.get("name"):
            self.inputs.setdefault(attributes["name"], attributes)


def _fetch_form(proxy: Proxy, source: str) -> tuple[Response, _Form]:
    page = proxy.request(proxy.public_site, proxy.path, source=source)
    assert page.status == 200, f"{proxy.public_site}{proxy.path}: {page.status} {page.body[:300]}"
    return page, _Form(page.body)


def _wait_token_age(host: Any, token: str) -> None:
    """Until the host's clock says the token is old enough (no fixed sleep)."""
    issued = int(token.split(".", 1)[0])
    wait = f'until [ "$(date +%s)" -gt {issued + TOKEN_MIN_AGE} ]; do sleep 0.2; done'
    host.run_expect([0], shlex.join(["timeout", str(TOKEN_MIN_AGE + 10), "sh", "-c", wait]))


def _post_report(proxy: Proxy, source: str, description: str) -> Response:
    _, form = _fetch_form(proxy, source)
    token = form.inputs["jeton"]["value"]
    _wait_token_age(proxy.host, token)
    fields = {
        "type": "description",
        "description": description,
        "consentement": "oui",
        "jeton": token,
        "site_web": "",
    }
    args: list[str] = []
    for key, value in fields.items():
        args += ["--data-urlencode", f"{key}={value}"]
    return proxy.request(proxy.public_site, proxy.path, *args, source=source)


def _api(proxy: Proxy, route: str, token: str | None, source: str = "127.0.0.1") -> Response:
    args = ["-H", f"Authorization: Bearer {token}"] if token is not None else []
    return proxy.request(proxy.admin_site, f"/moderation/api/{route}", *args, source=source)


# --- The service and its unit -----------------------------------------------------------


def test_service_enabled_and_running(host):
    service = host.service(SERVICE)
    assert service.is_enabled
    assert service.is_running


def test_service_runs_as_its_own_account(host, setting: Setting):
    user = setting("reporting_user", "educloud-reports")
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    owners = host.check_output(f"ps -o user= --ppid {pid} -p {pid}").split()
    assert owners, f"no process for {SERVICE}"
    assert set(owners) == {user}, owners


def test_service_listens_on_loopback_only(host, setting: Setting):
    port = int(setting("reporting_port", 8090))
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_unit_is_sandboxed(host):
    """systemd's own assessment of the unit's sandboxing (C10, least privilege)."""
    output = host.check_output(f"systemd-analyze security {SERVICE}.service --no-pager 2>&1")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", output)
    assert match, output[-500:]
    assert float(match.group(1)) <= MAX_EXPOSURE, output[-2000:]


def test_configuration_holds_no_secret(host, setting: Setting, moderation_token):
    config = host.file("/etc/educloud/reports.yml")
    group = setting("reporting_group", "educloud-reports")
    assert (config.user, config.group, config.mode) == ("root", group, 0o640)
    content = config.content_string
    assert moderation_token not in content
    digest = hashlib.sha256(moderation_token.encode()).hexdigest()
    assert f"moderation_token_sha256: {digest}" in content


@pytest.mark.parametrize("name", ["db-password", "form-secret"])
def test_secret_files_readable_by_the_service_only(host, setting: Setting, name):
    directory = setting("reporting_secrets_dir", "/etc/educloud/reports-secrets")
    user = setting("reporting_user", "educloud-reports")
    secret = host.file(f"{directory}/{name}")
    assert (secret.user, secret.mode) == (user, 0o600)


# --- The form through the proxy (C9) ------------------------------------------------------


def test_form_served_in_french_over_https(proxy):
    page, form = _fetch_form(proxy, _fresh_source())
    assert page.headers.get("content-type") == ["text/html; charset=utf-8"]
    assert '<html lang="fr">' in page.body
    assert "Signal" in page.body
    assert [f.get("method") for f in form.forms] == ["post"]
    assert form.forms[0].get("action") == proxy.path
    assert {"description", "jeton", "consentement"} <= form.inputs.keys()


def test_form_loads_nothing_from_elsewhere(proxy):
    """No script and no third-party resource: the proxy's and the service's CSP keep every
    source on the site (C3)."""
    page, form = _fetch_form(proxy, _fresh_source())
    assert not [tag for tag, _ in form.tags if tag in ("script", "iframe", "img", "link")]
    policies = page.headers.get("content-security-policy", [])
    assert policies, page.headers
    for policy in policies:
        assert "http:" not in policy
        assert "https:" not in policy
        assert not re.search(r"\s\*(\s|;|$)", policy), policy
    assert page.headers.get("strict-transport-security"), page.headers


def test_privacy_notice_links_to_the_form(proxy, setting: Setting):
    notice_path = str(setting("reverse_proxy_privacy_notice_path", "/confidentialite"))
    page = proxy.request(proxy.public_site, notice_path)
    assert page.status == 200
    section = page.body.split('id="signalement"', 1)[1].split("</section>", 1)[0]
    assert f'href="{proxy.path}"' in section
    assert 'href="mailto:' in section


def test_valid_report_is_stored_and_mailed(host, setting: Setting, proxy, moderation_token):
    marker = f"test-{uuid.uuid4().hex}"
    answer = _post_report(proxy, _fresh_source(), f"Contenu de test signalé ({marker}).")
    assert answer.status == 200, answer.body[:1000]
    match = re.search(r"SIG-[A-Z0-9]{6}", answer.body)
    assert match, answer.body[:1000]
    reference = match.group(0)

    stored = _api(proxy, f"reports/{reference}", moderation_token)
    assert stored.status == 200, stored.body
    assert marker in json.dumps(json.loads(stored.body), ensure_ascii=False)

    relay = str(setting("reporting_smtp_host", ""))
    port = int(setting("reporting_smtp_port", 25))
    maildir = LabPaths.default().mail / "new"
    if (relay, port) == (str(BRIDGE_ADDRESS), SMTP_SINK_PORT) and maildir.is_dir():
        assert _wait_for_mail(maildir, reference), f"no mail for {reference} in {maildir}"
    else:
        # Not the lab's sink: the service's log says whether the relay took the mail.
        log = host.check_output(f"journalctl -u {SERVICE} --no-pager -o cat --since=-5min")
        assert f"report {reference}: mail to the moderators failed" not in log


def _wait_for_mail(maildir: Path, reference: str, timeout: float = 20.0) -> Path | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in maildir.iterdir():
            if reference.encode() in message.read_bytes():
                return message
        time.sleep(0.2)
    return None


def test_oversized_report_gets_413(proxy):
    source = _fresh_source()
    big = "a" * 64 * 1024
    answer = proxy.request(
        proxy.public_site, proxy.path, "--data-urlencode", f"description={big}", source=source
    )
    assert answer.status == 413, answer.headers


def test_form_is_rate_limited_per_address(proxy, setting: Setting):
    source = _fresh_source()
    burst = int(setting("reverse_proxy_reporting_burst", 5))
    urls = [f"https://{proxy.public_site}{proxy.path}"] * (burst + 4)
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}\\n", "--max-time", "30"]
    argv += ["--resolve", f"{proxy.public_site}:443:127.0.0.1", "--cacert", proxy.ca]
    argv += ["--interface", source, *urls]
    codes = proxy.host.check_output(shlex.join(argv)).split()
    assert codes[0] == "200", codes
    assert "429" in codes, codes


# --- The moderation API -----------------------------------------------------------------


@pytest.fixture
def admin_site(proxy):
    if not proxy.admin_site:
        pytest.skip("reverse_proxy_reporting_admin_site is not set: no moderation API")
    return proxy


def test_moderation_api_refused_outside_admin_networks(admin_site, moderation_token):
    source = _fresh_source()
    if any(
        ipaddress.ip_address(source) in ipaddress.ip_network(n) for n in admin_site.admin_networks
    ):
        pytest.skip(f"{source} is in the admin networks {admin_site.admin_networks}")
    answer = _api(admin_site, "reports", moderation_token, source=source)
    assert answer.status == 403, answer.body[:300]


def test_moderation_api_needs_the_token(admin_site, moderation_token):
    assert _api(admin_site, "reports", None).status == 401
    assert _api(admin_site, "reports", "not-the-token-" + uuid.uuid4().hex).status == 401
    answer = _api(admin_site, "reports?status=open", moderation_token)
    assert answer.status == 200, answer.body[:300]
    assert isinstance(json.loads(answer.body)["reports"], list)


def test_moderation_api_not_on_public_sites(proxy, moderation_token):
    answer = proxy.request(
        proxy.public_site,
        "/moderation/api/reports",
        "-H",
        f"Authorization: Bearer {moderation_token}",
    )
    assert answer.status != 200 or '"reports"' not in answer.body
