"""The charter checks' evaluation logic fails on deliberately broken inputs.

Each tests/charter check reads something from the deployment and hands it to one of
these functions; here each function is given a good and a broken configuration, so no
check can report "verified" without being able to fail.
"""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from educloud.charter import browser, egress, geo, headers, hostconfig, keycloak, report, services
from educloud.junit import Case
from educloud.policy import Destination, load

APT = Destination("apt", "package_mirror", "miroir", "198.18.0.1", 3142, "tcp", "FR")


def _rule(*expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": "t", "chain": "output", "expr": list(expr)}}


GOOD_RULESET: dict[str, Any] = {
    "nftables": [
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "input",
                "hook": "input",
                "policy": "drop",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "output",
                "hook": "output",
                "policy": "drop",
            }
        },
        _rule({"counter": {"packets": 7, "bytes": 420}}, {"reject": None}),
    ]
}


def test_inbound_accept_policy_fails() -> None:
    assert egress.inbound_problems(GOOD_RULESET) == []
    broken = copy.deepcopy(GOOD_RULESET)
    broken["nftables"][0]["chain"]["policy"] = "accept"
    assert egress.inbound_problems(broken) == ["inet t input: policy accept, not drop"]


GOOD_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; base-uri 'self'; "
        "form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "Server": "nginx",
}


def test_headers_good() -> None:
    assert headers.security_header_problems(GOOD_HEADERS) == []
    assert headers.csp_problems(GOOD_HEADERS) == []


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        (
            "Strict-Transport-Security",
            "max-age=3600",
            "Strict-Transport-Security max-age under one year",
        ),
        ("X-Content-Type-Options", "", "X-Content-Type-Options is not nosniff"),
        ("Referrer-Policy", "unsafe-url", "Referrer-Policy leaks addresses"),
        ("Server", "nginx/1.22.1", "Server header discloses a version"),
        ("Content-Security-Policy", "default-src 'self'", "framing by other sites is not refused"),
    ],
)
def test_headers_broken(name: str, value: str, problem: str) -> None:
    broken = GOOD_HEADERS | {name: value}
    assert any(p.startswith(problem) for p in headers.security_header_problems(broken))


@pytest.mark.parametrize(
    ("csp", "problem"),
    [
        ("", "no Content-Security-Policy"),
        ("script-src 'self'", "Content-Security-Policy has no default-src"),
        (
            "default-src 'self'; script-src https://cdn.example.com",
            "script-src allows another origin: https://cdn.example.com",
        ),
        ("default-src 'self'; font-src https:", "font-src allows https:"),
        ("default-src *", "default-src allows *"),
    ],
)
def test_csp_third_party_fails(csp: str, problem: str) -> None:
    assert problem in headers.csp_problems({"Content-Security-Policy": csp} if csp else {})


def test_csp_local_content_accepted_only_outside_scripts() -> None:
    # Nextcloud's pages need blob: workers and data: fonts: content the page made itself.
    local = (
        "default-src 'self'; font-src 'self' data:; worker-src 'self' blob:; base-uri 'self'; "
        "form-action 'self'"
    )
    assert headers.csp_problems({"Content-Security-Policy": local}) == []
    scripts = (
        "default-src 'self'; script-src 'self' data: blob:; base-uri 'self'; form-action 'self'"
    )
    assert headers.csp_problems({"Content-Security-Policy": scripts}) == [
        "script-src allows data:",
        "script-src allows blob:",
    ]


OWN = ["auth.educloud.test"]


def test_browser_third_party_request_fails() -> None:
    visit = browser.PageVisit(
        "https://auth.educloud.test/",
        requested=[
            "https://auth.educloud.test/",
            "data:image/png;base64,AA",
            "https://fonts.googleapis.com/css?family=Roboto",
        ],
    )
    assert browser.third_party_requests(visit, OWN) == [
        "https://fonts.googleapis.com/css?family=Roboto"
    ]
    assert visit.origins == ["https://auth.educloud.test", "data:", "https://fonts.googleapis.com"]


def test_browser_cookies() -> None:
    good = browser.PageVisit(
        "u", cookies=[browser.Cookie("KC_RESTART", "auth.educloud.test", True)]
    )
    assert browser.cookie_problems(good, OWN) == []
    bad = browser.PageVisit(
        "u",
        cookies=[
            browser.Cookie("_ga", ".google-analytics.com", True),
            browser.Cookie("s", "auth.educloud.test", False),
        ],
    )
    assert browser.cookie_problems(bad, OWN) == [
        "third-party cookie _ga for .google-analytics.com",
        "cookie s (auth.educloud.test) lacks Secure",
    ]


REALM = {
    "eventsListeners": ["jboss-logging"],
    "eventsEnabled": True,
    "eventsExpiration": 180 * 86400,
    "adminEventsEnabled": True,
    "attributes": {"adminEventsExpiration": str(365 * 86400)},
    "bruteForceProtected": True,
    "failureFactor": 5,
}


def test_keycloak_good_realm() -> None:
    assert keycloak.event_listener_problems(REALM) == []
    assert keycloak.events_expiration_problems(REALM, 180) == []
    assert keycloak.admin_events_expiration_problems(REALM, 365) == []
    assert keycloak.brute_force_problems(REALM) == []


def test_keycloak_broken_realm() -> None:
    broken = REALM | {
        "eventsListeners": ["jboss-logging", "analytics-webhook"],
        "eventsExpiration": None,
        "attributes": {},
        "bruteForceProtected": False,
    }
    assert keycloak.event_listener_problems(broken) == [
        "events are sent to listener(s) analytics-webhook"
    ]
    assert keycloak.events_expiration_problems(broken, 180) == [
        "login events expire after None s, the policy says 15552000 s"
    ]
    assert keycloak.admin_events_expiration_problems(broken, 365) == [
        "admin events expire after None s, the policy says 31536000 s"
    ]
    assert keycloak.brute_force_problems(broken) == ["brute-force protection is off"]


def test_sshd_settings() -> None:
    good = hostconfig.parse_sshd_t(
        "passwordauthentication no\nkbdinteractiveauthentication no\n"
        "permitrootlogin without-password\n"
        "permitemptypasswords no\nx11forwarding no\nmaxauthtries 3\n"
        "allowtcpforwarding no\nallowagentforwarding no\npermittunnel no\ngatewayports no\n"
        "permituserenvironment no\n"
    )
    assert hostconfig.sshd_problems(good) == []
    broken = good | {"passwordauthentication": "yes", "maxauthtries": "6"}
    assert hostconfig.sshd_problems(broken) == [
        "passwordauthentication is 'yes', expected no",
        "maxauthtries is 6, expected 4 or less",
    ]
    # R63: forwarding of any kind (sshd -T prints "local" or "all" for AllowTcpForwarding).
    tunnels = good | {"allowtcpforwarding": "local", "permittunnel": "point-to-point"}
    assert hostconfig.sshd_problems(tunnels) == [
        "allowtcpforwarding is 'local', expected no",
        "permittunnel is 'point-to-point', expected no",
    ]


def test_apt_components() -> None:
    good = {"/etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n"}
    assert hostconfig.apt_component_problems(good) == []
    broken = {
        "/etc/apt/sources.list": (
            "deb [arch=amd64] http://deb.debian.org/debian bookworm main contrib\n"
        ),
        "/etc/apt/sources.list.d/debian.sources": (
            "Types: deb\nComponents: main non-free-firmware\n"
        ),
    }
    assert hostconfig.apt_component_problems(broken) == [
        "/etc/apt/sources.list enables the contrib component",
        "/etc/apt/sources.list.d/debian.sources enables the non-free-firmware component",
    ]


def test_non_free_packages() -> None:
    assert hostconfig.non_free_packages(["nginx httpd", "bash shells"]) == []
    assert hostconfig.non_free_packages(["firmware-misc-nonfree non-free-firmware/kernel"]) == [
        "firmware-misc-nonfree (non-free-firmware/kernel)"
    ]


def test_journald_retention_reads_the_last_value_and_every_form() -> None:
    config = (
        "[Journal]\nMaxRetentionSec=90day\nMaxFileSec=1month\n"
        "# /etc/systemd/journald.conf.d/x.conf\nMaxRetentionSec=30day\nMaxFileSec=1day\n"
    )
    assert hostconfig.journald_retention_problems(config, 30) == []
    # Other spellings of the same or a shorter period pass; longer ones and none fail.
    assert hostconfig.journald_retention_problems(config.replace("=30day", "=4w"), 30) == []
    for broken in ("=1month", "=0", "=", "=1y", "=31d"):
        problems = hostconfig.journald_retention_problems(config.replace("=30day", broken), 30)
        assert problems and "MaxRetentionSec" in problems[0], broken
    assert hostconfig.journald_retention_problems("[Journal]\nMaxFileSec=1day\n", 30) == [
        "journald MaxRetentionSec is None, the policy says 30day"
    ]
    assert (
        "MaxFileSec"
        in hostconfig.journald_retention_problems(
            config.replace("MaxFileSec=1day", "MaxFileSec=1week"), 30
        )[0]
    )


DEBIAN_APT_RULES = """/var/log/apt/term.log {
  rotate 12
  monthly
  compress
  missingok
  notifempty
}
"""


def test_logrotate_every_stanza_bounded() -> None:
    main = "daily\nrotate 30\nmaxage 28\ninclude /etc/logrotate.d\n"
    daily_apt = DEBIAN_APT_RULES.replace("monthly", "daily")
    assert hostconfig.logrotate_problems({"main": main, "apt": daily_apt}, 30) == []
    # Debian's own apt rules: monthly, up to 12 files: lines kept about two months.
    problems = hostconfig.logrotate_problems({"main": main, "apt": DEBIAN_APT_RULES}, 30)
    assert problems == [
        "apt: /var/log/apt/term.log: monthly, rotate 12, maxage 28: lines kept up to 90 days, "
        "the policy says 30"
    ]
    # No maxage anywhere: the rotate count alone decides.
    inherits = {"main": "weekly\nrotate 52\n", "x": "/var/log/x.log {\n missingok\n}\n"}
    assert "lines kept up to 371 days" in hostconfig.logrotate_problems(inherits, 30)[0]
    # Rotated by size alone: no bound.
    by_size = "/var/log/x.log {\n size 100M\n rotate 3\n}\n"
    assert "size only" in hostconfig.logrotate_problems({"main": main, "x": by_size}, 30)[0]
    # Scripts are not directives.
    scripted = "/var/log/y.log {\n daily\n postrotate\n  weekly\n endscript\n}\n"
    assert hostconfig.logrotate_problems({"main": main, "y": scripted}, 30) == []


@pytest.mark.skipif(shutil.which("geoiplookup") is None, reason="geoip-bin not installed")
def test_geoip_offline_lookup() -> None:
    # Offline database lookups: no packet is sent to these addresses.
    assert geo.country_of("193.49.205.17") == "FR"  # RENATER
    assert geo.country_of("8.8.8.8") == "US"
    assert geo.country_of("198.18.0.11") is None


def _case(check: str, charter: str, outcome: str, host: str = "edu1", message: str = "") -> Case:
    properties = {"check": check, "charter": charter, "evidence": "e", "host": host}
    return Case("c", check, outcome, message, properties)


def _c10(outcome: str, *, declaration_outcome: str = "passed") -> list[Case]:
    """Every listed check of C10 with `outcome`, its declaration with its own outcome."""
    declaration = "test_backup.py::test_every_data_host_is_backed_up"
    checks = load().guarantee("C10").checks
    return [
        _case(c, "C10", declaration_outcome if c == declaration else outcome, host="")
        for c in checks
    ]


def test_report_statuses() -> None:
    policies = load()
    cases = [
        _case("test_egress.py::test_unlisted_destination_refused", "C12,C2,C5", "passed"),
        _case("test_telemetry.py::test_no_telemetry_package", "C2", "failed"),
        _case("test_nextcloud.py::test_user_data_export", "C8", "skipped"),
    ]
    statuses = {g.id: g.status for g in report.build(policies, cases)}
    assert statuses["C2"] == "failed"
    # One check of C12 passed, its other listed check never ran: partial, not verified.
    assert statuses["C12"] == "partial"
    assert statuses["C8"] == "not_verifiable"
    assert statuses["C11"] == "attest"
    assert statuses["C3"] == "not_verifiable"  # its checks did not run at all
    assert report.technical_failures(report.build(policies, cases)) == ["C2"]


def test_verified_needs_every_check_passed_on_every_host() -> None:
    policies = load()
    assert {g.id: g.status for g in report.build(policies, _c10("passed"))}["C10"] == "verified"
    one_host_skipped = [
        *_c10("passed"),
        _case("test_tls.py::test_tls_mozilla_intermediate", "C10", "skipped", host="bak1"),
    ]
    built = {g.id: g for g in report.build(policies, one_host_skipped)}
    assert built["C10"].status == "partial"


def test_declarations_alone_are_declared_never_verified() -> None:
    policies = load()
    declared_only = _c10("skipped")
    statuses = {g.id: g.status for g in report.build(policies, declared_only)}
    assert statuses["C10"] == "declared"
    # C1 on a lab: the hosting declaration read, the geolocation could not run.
    c1 = [
        _case("test_hosting.py::test_host_declares_approved_hosting", "C1", "passed"),
        _case("test_hosting.py::test_public_address_located_in_allowed_country", "C1", "skipped"),
    ]
    assert {g.id: g.status for g in report.build(policies, c1)}["C1"] == "declared"
    # A declaration failing fails the guarantee all the same.
    failing = _c10("passed", declaration_outcome="failed")
    assert {g.id: g.status for g in report.build(policies, failing)}["C10"] == "failed"


def test_interrupted_run_claims_nothing() -> None:
    policies = load()
    cases = [
        *_c10("passed"),
        _case("tests/charter/test_x.py", "", "failed", message="collection failure"),
    ]
    reasons = report.interruptions(cases, {g.id for g in policies.guarantees})
    assert reasons and "collection failure" in reasons[0]
    built = report.build(policies, cases, interrupted=reasons)
    assert {g.status for g in built} == {"interrupted"}
    # A failure owned by a guarantee is a failure, not an interruption.
    assert report.interruptions(_c10("failed"), {"C10"}) == []


def test_report_limited_to_some_guarantees_lists_only_them() -> None:
    built = report.build(load(), _c10("passed"), only={"C10"})
    assert [g.id for g in built] == ["C10"]


def test_checks_per_host_for_the_header() -> None:
    cases = [
        _case("test_tls.py::test_tls_mozilla_intermediate", "C10", "passed", host="edu1"),
        _case("test_host_security.py::test_ssh_hardened", "C10", "failed", host="bak1"),
    ]
    per_host = report.checks_per_host(report.build(load(), cases))
    assert per_host["edu1"]["passed"] == ["test_tls.py::test_tls_mozilla_intermediate"]
    assert per_host["bak1"]["failed"] == ["test_host_security.py::test_ssh_hardened"]


def test_report_renders_in_french(tmp_path: Any) -> None:
    policies = load()
    cases = [_case("test_telemetry.py::test_no_telemetry_package", "C2", "failed")]
    built = report.build(policies, cases)
    meta = report.meta_for(Path("inv"), datetime(2026, 11, 25, tzinfo=UTC), 1, ["h"], built, [])
    outputs = report.write(built, meta, tmp_path)
    markdown = outputs["markdown"].read_text(encoding="utf-8")
    assert "| C2 | Aucun usage commercial | technique | échec | 0 | 1 | 3 |" in markdown
    assert "À attester par l'exploitant" in markdown
    assert "| edu1 | — | test_telemetry.py::test_no_telemetry_package |" in markdown
    assert "INTERROMPUE" not in markdown
    html = outputs["html"].read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and 'class="failed">échec' in html
    assert '"status": "failed"' in outputs["json"].read_text(encoding="utf-8")
    interrupted = report.build(policies, cases, interrupted=["pytest a planté"])
    meta = report.meta_for(
        Path("inv"), datetime(2026, 11, 25, tzinfo=UTC), 1, ["h"], interrupted, ["pytest a planté"]
    )
    outputs = report.write(interrupted, meta, tmp_path)
    markdown = outputs["markdown"].read_text(encoding="utf-8")
    assert "VÉRIFICATION INTERROMPUE" in markdown and "- pytest a planté" in markdown
    assert "| C2 | Aucun usage commercial | technique | interrompu |" in markdown
    assert '"complete": false' in outputs["json"].read_text(encoding="utf-8")


def test_nextcloud_services_expected() -> None:
    expected = services.expected_services(["reverse_proxy", "nextcloud"], {})
    assert [(s.unit, s.user) for s in expected] == [
        ("nginx", "www-data"),
        ("php8.2-fpm", "nextcloud"),
    ]


def test_single_server_runs_its_own_redis_without_sentinel() -> None:
    # Redis is the redis role's: a single server is in the group redis, in local mode.
    expected = services.expected_services(
        ["postgresql", "redis", "reverse_proxy", "nextcloud"], {"redis_mode": "local"}
    )
    assert [(s.unit, s.user) for s in expected] == [
        ("postgresql@15-main", "postgres"),
        ("redis-server", "redis"),
        ("nginx", "www-data"),
        ("php8.2-fpm", "nextcloud"),
    ]


def test_regional_services_expected() -> None:
    database = services.expected_services(
        ["etcd", "postgresql", "redis"], {"postgresql_patroni_enabled": True}
    )
    assert [(s.unit, s.user) for s in database] == [
        ("patroni", "postgres"),
        ("etcd", "etcd"),
        ("redis-server", "redis"),
        ("redis-sentinel", "redis"),
    ]
    balancer = services.expected_services(["load_balancer", "reverse_proxy"], {})
    assert [(s.unit, s.user, s.workers) for s in balancer] == [
        ("haproxy", "haproxy", True),
        ("nginx", "www-data", True),
    ]
    single = services.expected_services(["postgresql"], {"postgresql_patroni_enabled": False})
    assert [s.unit for s in single] == ["postgresql@15-main"]


def test_services_least_privilege() -> None:
    expected = services.expected_services(["keycloak", "reverse_proxy"], {})
    assert [s.unit for s in expected] == ["keycloak", "nginx"]
    assert services.service_problems(expected[0], "active", ["keycloak"]) == []
    assert services.service_problems(expected[0], "active", ["root"]) == [
        "keycloak runs as root, expected keycloak"
    ]
    assert services.service_problems(expected[1], "failed", []) == ["nginx is failed"]
