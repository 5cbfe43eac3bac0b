"""The charter checks' evaluation logic fails on deliberately broken inputs.

Each tests/charter check reads something from the deployment and hands it to one of
these functions; here each function is given a good and a broken configuration, so no
check can report "verified" without being able to fail.
"""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest

from educloud.charter import browser, egress, geo, headers, hostconfig, keycloak, report, services
from educloud.junit import Case
from educloud.policy import Destination, load

APT = Destination("apt", "package_mirror", "miroir", "198.18.0.1", 3142, "tcp", "FR")


def _rule(*expr: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": "t", "chain": "output", "expr": list(expr)}}


def _daddr(address: str) -> dict[str, Any]:
    return {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip", "field": "daddr"}},
            "right": address,
        }
    }


def _dport(port: int) -> dict[str, Any]:
    return {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
            "right": port,
        }
    }


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
        _rule(_daddr("198.18.0.1"), _dport(3142), {"accept": None}),
        _rule({"log": {"prefix": egress.DENY_LOG_PREFIX}}),
        _rule({"counter": {"packets": 7, "bytes": 420}}, {"reject": None}),
    ]
}


def test_egress_good_ruleset() -> None:
    assert egress.ruleset_problems(GOOD_RULESET, [APT]) == []
    assert egress.refused_count(GOOD_RULESET) == 7


def test_egress_accept_policy_fails() -> None:
    broken = copy.deepcopy(GOOD_RULESET)
    broken["nftables"][1]["chain"]["policy"] = "accept"
    del broken["nftables"][4]
    assert egress.ruleset_problems(broken, [APT]) == [
        "inet t output: policy accept and no final reject"
    ]


def test_egress_accept_all_rule_fails() -> None:
    broken = copy.deepcopy(GOOD_RULESET)
    broken["nftables"].insert(2, _rule({"accept": None}))
    assert "inet t output: a rule accepts every destination" in egress.ruleset_problems(
        broken, [APT]
    )


def test_egress_unlisted_destination_allowed_fails() -> None:
    broken = copy.deepcopy(GOOD_RULESET)
    broken["nftables"].insert(2, _rule(_daddr("203.0.113.9"), _dport(443), {"accept": None}))
    assert egress.ruleset_problems(broken, [APT]) == [
        "the firewall allows 203.0.113.9 tcp/443, not in the policy"
    ]


def test_egress_missing_log_and_destination_fail() -> None:
    broken = copy.deepcopy(GOOD_RULESET)
    del broken["nftables"][3]
    del broken["nftables"][2]
    assert egress.ruleset_problems(broken, [APT]) == [
        "refused connections are not logged (prefix 'educloud-egress-drop: ')",
        "policy destination apt (198.18.0.1 tcp/3142) is not allowed by the firewall",
    ]


def test_no_output_chain_fails() -> None:
    assert egress.ruleset_problems({"nftables": []}, []) == [
        "no output chain: outbound traffic is not filtered"
    ]


def test_inbound_accept_policy_fails() -> None:
    assert egress.inbound_problems(GOOD_RULESET) == []
    broken = copy.deepcopy(GOOD_RULESET)
    broken["nftables"][0]["chain"]["policy"] = "accept"
    assert egress.inbound_problems(broken) == ["inet t input: policy accept, not drop"]


GOOD_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'",
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
    local = "default-src 'self'; font-src 'self' data:; worker-src 'self' blob:"
    assert headers.csp_problems({"Content-Security-Policy": local}) == []
    scripts = "default-src 'self'; script-src 'self' data: blob:"
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


def test_keycloak_identity_providers() -> None:
    assert keycloak.identity_provider_problems([{"alias": "academie", "providerId": "saml"}]) == []
    assert keycloak.identity_provider_problems([{"alias": "g", "providerId": "google"}]) == [
        "identity provider g is a third-party platform (google)"
    ]


def test_keycloak_admin_otp() -> None:
    flow = [
        {"providerId": "auth-username-password-form", "requirement": "REQUIRED"},
        {"providerId": "conditional-user-role", "requirement": "REQUIRED"},
        {"providerId": "auth-otp-form", "requirement": "REQUIRED"},
    ]
    assert keycloak.admin_otp_problems(flow) == []
    assert keycloak.admin_otp_problems(flow[:1]) == [
        "the browser flow has no OTP step conditioned on the administrators' role"
    ]
    optional = [*flow[:2], {"providerId": "auth-otp-form", "requirement": "ALTERNATIVE"}]
    assert keycloak.admin_otp_problems(optional) == [
        "the OTP step of the browser flow is not REQUIRED"
    ]


def test_sshd_settings() -> None:
    good = hostconfig.parse_sshd_t(
        "passwordauthentication no\nkbdinteractiveauthentication no\n"
        "permitrootlogin without-password\n"
        "permitemptypasswords no\nx11forwarding no\nmaxauthtries 3\n"
    )
    assert hostconfig.sshd_problems(good) == []
    broken = good | {"passwordauthentication": "yes", "maxauthtries": "6"}
    assert hostconfig.sshd_problems(broken) == [
        "passwordauthentication is 'yes', expected no",
        "maxauthtries is 6, expected 4 or less",
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


def test_journald_and_logrotate_retention() -> None:
    config = (
        "[Journal]\nMaxRetentionSec=90day\n"
        "# /etc/systemd/journald.conf.d/x.conf\nMaxRetentionSec=30day\n"
    )
    assert hostconfig.journald_retention_problems(config, 30) == []
    assert hostconfig.journald_retention_problems("[Journal]\n", 30) == [
        "journald MaxRetentionSec is None, the policy says 30day"
    ]
    assert hostconfig.logrotate_problems("weekly\nrotate 4\nmaxage 30\n", 30) == []
    assert hostconfig.logrotate_problems("weekly\nrotate 52\n", 30) == [
        "logrotate maxage is None, the policy says at most 30 days"
    ]


@pytest.mark.skipif(shutil.which("geoiplookup") is None, reason="geoip-bin not installed")
def test_geoip_offline_lookup() -> None:
    # Offline database lookups: no packet is sent to these addresses.
    assert geo.country_of("193.49.205.17") == "FR"  # RENATER
    assert geo.country_of("8.8.8.8") == "US"
    assert geo.country_of("198.18.0.11") is None


def _case(check: str, charter: str, outcome: str) -> Case:
    return Case("c", check, outcome, "", {"check": check, "charter": charter, "evidence": "e"})


def test_report_statuses() -> None:
    policies = load()
    cases = [
        _case("test_egress.py::test_unlisted_destination_refused", "C12,C2,C5", "passed"),
        _case("test_telemetry.py::test_no_telemetry_package", "C2", "failed"),
        _case("test_nextcloud.py::test_user_data_export", "C8", "skipped"),
    ]
    statuses = {g.id: g.status for g in report.build(policies, cases)}
    assert statuses["C2"] == "failed"
    assert statuses["C12"] == "verified"
    assert statuses["C8"] == "not_verifiable"
    assert statuses["C11"] == "attest"
    assert statuses["C3"] == "not_verifiable"  # its checks did not run at all
    assert report.technical_failures(report.build(policies, cases)) == ["C2"]


def test_report_renders_in_french(tmp_path: Any) -> None:
    policies = load()
    cases = [_case("test_telemetry.py::test_no_telemetry_package", "C2", "failed")]
    built = report.build(policies, cases)
    meta = {
        "inventory": "inv",
        "started": "2026-11-25T00:00:00",
        "duration_seconds": 1,
        "hosts": ["h"],
    }
    outputs = report.write(built, meta, tmp_path)
    markdown = outputs["markdown"].read_text(encoding="utf-8")
    assert "| C2 | Aucun usage commercial | technique | échec | 0 | 1 | 2 |" in markdown
    assert "À attester par l'exploitant" in markdown
    html = outputs["html"].read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and 'class="failed">échec' in html
    assert '"status": "failed"' in outputs["json"].read_text(encoding="utf-8")


def test_nextcloud_services_expected() -> None:
    expected = services.expected_services(["reverse_proxy", "nextcloud"], {})
    assert [(s.unit, s.user) for s in expected] == [
        ("nginx", "www-data"),
        ("php8.2-fpm", "nextcloud"),
        ("redis-server", "redis"),
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
