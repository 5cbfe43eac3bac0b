"""The web checks of the charter fail on deliberately broken inputs (C2, C3, C6, C10).

CSP (every fetch directive, its fallback, several policies), the security headers nginx
applies in every server and location of an `nginx -T` output, the retention rows of the
privacy notice (rendered from the role's own template), the pages a browser loaded, and
the Nextcloud apps allow list. Each function gets a good input and broken ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from markupsafe import escape
from tests.charter.test_privacy_notice import notice_rows, retention_row_problems

from educloud import policy
from educloud.charter import browser, headers, nextcloud
from educloud.errors import EducloudError
from educloud.paths import repo_root
from educloud.transparency import documents as transparency

OWN = ["auth.educloud.test", "cloud.educloud.test"]
STRICT = "default-src 'self'; frame-ancestors 'self'; object-src 'none'; base-uri 'self'; "


def _csp(value: str) -> list[str]:
    return headers.csp_problems({"Content-Security-Policy": value}, OWN)


# --- Content-Security-Policy --------------------------------------------------------------


def test_csp_closed_policy_passes() -> None:
    assert _csp(STRICT + "form-action 'self' https://cloud.educloud.test") == []


@pytest.mark.parametrize(
    "directive",
    [
        "script-src-elem",
        "script-src-attr",
        "style-src-elem",
        "style-src-attr",
        "manifest-src",
        "child-src",
        "prefetch-src",
        "frame-src",
        "worker-src",
        "connect-src",
        "base-uri",
        "form-action",
    ],
)
def test_csp_every_directive_counts(directive: str) -> None:
    directives = {"base-uri": "'self'", "form-action": "'self'"}
    directives[directive] = "'self' https://cdn.example.net"
    value = "default-src 'self'; " + "; ".join(f"{k} {v}" for k, v in directives.items())
    assert _csp(value) == [f"{directive} allows another origin: https://cdn.example.net"]


def test_csp_absent_directive_falls_back_to_default_src() -> None:
    problems = _csp(
        "default-src 'self' https://cdn.example.net; base-uri 'self'; form-action 'self'"
    )
    # Reported once, under the directive that allows it, not once per fetch directive.
    assert problems == ["default-src allows another origin: https://cdn.example.net"]


def test_csp_fallback_chain_of_workers_and_frames() -> None:
    # worker-src and frame-src fall back to child-src before default-src.
    problems = _csp(STRICT + "form-action 'self'; child-src 'self' https://frames.example.net")
    assert problems == ["child-src allows another origin: https://frames.example.net"]
    # worker-src falls back to script-src: blob: is fine for a worker, not for a script.
    assert _csp(STRICT + "form-action 'self'; script-src 'self' blob:") == [
        "script-src allows blob:"
    ]


def test_csp_navigation_directives_absent_allow_every_origin() -> None:
    assert _csp("default-src 'self'") == [
        "base-uri is not set: it allows every origin",
        "form-action is not set: it allows every origin",
    ]


def test_csp_scheme_and_wildcard_sources_fail() -> None:
    problems = _csp(STRICT + "form-action 'self'; connect-src 'self' wss:; img-src *.example.net")
    assert "connect-src allows wss:" in problems
    assert "img-src allows another origin: *.example.net" in problems


def test_csp_several_policies_all_must_allow_a_load() -> None:
    proxy = STRICT + "form-action 'self'"
    upstream = "frame-src 'self'; frame-ancestors 'self'; object-src 'none';"
    # Keycloak's own policy restricts little; the proxy's closes the rest: browsers obey both.
    assert headers.csp_problems({"Content-Security-Policy": f"{upstream}, {proxy}"}, OWN) == []
    widened = proxy.replace("default-src 'self'", "default-src 'self' https://cdn.example.net")
    assert headers.csp_problems({"Content-Security-Policy": f"{widened}, {widened}"}, OWN) == [
        "default-src allows another origin: https://cdn.example.net"
    ]


def test_csp_reports_sent_elsewhere_fail() -> None:
    value = STRICT + "form-action 'self'; report-uri https://csp.example.net/r"
    assert _csp(value) == ["report-uri sends reports to another origin: https://csp.example.net/r"]
    endpoints = {
        "Content-Security-Policy": STRICT + "form-action 'self'",
        "Reporting-Endpoints": 'default="https://reports.example.net/x"',
    }
    assert headers.csp_problems(endpoints, OWN) == [
        "reporting-endpoints sends reports to another origin: https://reports.example.net/x"
    ]


def test_security_headers_without_https_skip_hsts_only() -> None:
    plain = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    assert headers.security_header_problems(plain, https=False) == []
    assert headers.security_header_problems(plain)[0].startswith("Strict-Transport-Security")


# --- nginx -T: add_header in every server and location ------------------------------------

SECURITY_HEADERS = """
        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
        add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'" always;
        add_header Referrer-Policy "no-referrer" always;
        add_header X-Content-Type-Options "nosniff" always;
        add_header X-Frame-Options "SAMEORIGIN" always;
"""  # noqa: E501

NGINX_T = f"""# configuration file /etc/nginx/nginx.conf:
user www-data;
events {{ worker_connections 768; }}
http {{
    include /etc/nginx/mime.types;
    include /etc/nginx/educloud.d/*.conf;
    server {{
        listen 80 default_server;
        server_name _;
        add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'self'; base-uri 'self'; form-action 'self'" always;
        add_header Referrer-Policy "no-referrer" always;
        add_header X-Content-Type-Options "nosniff" always;
        location / {{ return 301 https://$host$request_uri; }}
    }}
    server {{
        listen 443 ssl http2 default_server;
        ssl_reject_handshake on;
    }}
    # auth.educloud.test
    server {{
        listen 443 ssl http2;
        server_name auth.educloud.test;
{SECURITY_HEADERS}
        location ^~ /admin/ {{ return 403; }}
        location = /confidentialite {{ alias /var/www/educloud/privacy/index.html; }}
        location / {{
            proxy_pass http://127.0.0.1:8080;
        }}
        include /etc/nginx/snippets/extra.conf;
    }}
}}

# configuration file /etc/nginx/mime.types:
types {{
    text/html html;
}}

# configuration file /etc/nginx/educloud.d/nextcloud.conf:
server {{
    listen 127.0.0.1:8081;
    server_name cloud.educloud.test;
    add_header X-Robots-Tag "noindex, nofollow" always;
    location ~ \\.php(?:$|/) {{ add_header Cache-Control "no-store"; }}
}}

# configuration file /etc/nginx/snippets/extra.conf:
location = /robots.txt {{
    return 200 "User-agent: *";
}}
"""  # noqa: E501


ADMIN = "location ^~ /admin/ { return 403; }"


def _broken(old: str, new: str) -> str:
    assert old in NGINX_T, old
    return NGINX_T.replace(old, new, 1)


def test_nginx_scopes_and_good_config() -> None:
    scopes = headers.header_scopes(NGINX_T)
    places = [(scope.server_names, scope.location, scope.https) for scope in scopes]
    # The loopback vhost (behind the proxy) and the handshake-refusing server answer no one.
    assert places == [
        (("_",), "", False),
        (("_",), "location /", False),
        (("auth.educloud.test",), "", True),
        (("auth.educloud.test",), "location ^~ /admin/", True),
        (("auth.educloud.test",), "location = /confidentialite", True),
        (("auth.educloud.test",), "location /", True),
        (("auth.educloud.test",), "location = /robots.txt", True),
    ]
    assert scopes[-1].file == "/etc/nginx/snippets/extra.conf"
    assert headers.location_header_problems(NGINX_T) == []
    assert headers.location_csp_problems(NGINX_T, OWN) == []


def test_nginx_location_with_its_own_add_header_drops_the_servers() -> None:
    dump = _broken(
        ADMIN,
        'location ^~ /admin/ {\n add_header Cache-Control "no-store" always;\n return 403;\n}',
    )
    problems = headers.location_header_problems(dump)
    assert len(problems) == 1
    where, found = problems[0].split(": ", 1)
    assert where.startswith("/etc/nginx/nginx.conf:")
    assert where.endswith("server auth.educloud.test location ^~ /admin/")
    assert "Strict-Transport-Security max-age under one year" in found
    assert "X-Content-Type-Options is not nosniff" in found
    assert "framing by other sites is not refused" in found
    assert "Referrer-Policy leaks addresses" in found
    assert "no Content-Security-Policy" in found


def test_nginx_add_header_in_an_included_file_is_found() -> None:
    dump = _broken('return 200 "User-agent: *";', 'add_header X-Robots-Tag "none";')
    (problem,) = headers.location_header_problems(dump)
    assert problem.startswith("/etc/nginx/snippets/extra.conf:1 server auth.educloud.test")
    assert "location = /robots.txt" in problem


def test_nginx_if_inside_a_location_counts() -> None:
    dump = _broken(
        "proxy_pass http://127.0.0.1:8080;",
        'proxy_pass http://127.0.0.1:8080;\n if ($arg_x) { add_header X-Debug "1"; }',
    )
    (problem,) = headers.location_header_problems(dump)
    assert "location / > if ($arg_x)" in problem


def test_nginx_inherit_merge_keeps_the_servers_headers() -> None:
    own = 'location ^~ /admin/ {\n add_header Cache-Control "no-store" always;\n return 403;\n}'
    assert headers.location_header_problems(_broken(ADMIN, own))
    merged = own.replace("{\n", "{\n add_header_inherit merge;\n", 1)
    assert headers.location_header_problems(_broken(ADMIN, merged)) == []
    off = "location ^~ /admin/ {\n add_header_inherit off;\n return 403;\n}"
    assert headers.location_header_problems(_broken(ADMIN, off))


def test_nginx_header_without_always_or_from_a_variable_fails() -> None:
    dump = _broken(
        '"nosniff" always;',
        '"nosniff";',
    )
    problems = headers.location_header_problems(dump)
    assert problems and all("X-Content-Type-Options lacks 'always'" in p for p in problems)
    dump = _broken(
        '"no-referrer" always;\n        add_header X-Content',
        "$policy always;\n        add_header X-Content",
    )
    assert any(
        "Referrer-Policy is set from a variable" in p
        for p in headers.location_header_problems(dump)
    )


def test_nginx_unsafe_referrer_policy_fails_in_every_location() -> None:
    dump = NGINX_T.replace(SECURITY_HEADERS, SECURITY_HEADERS.replace("no-referrer", "unsafe-url"))
    problems = headers.location_header_problems(dump)
    assert len(problems) == 5  # the server level and its four locations
    assert all("Referrer-Policy leaks addresses: 'unsafe-url'" in p for p in problems)


def test_nginx_csp_widened_in_one_location_fails_there() -> None:
    dump = _broken(
        "location = /confidentialite { alias /var/www/educloud/privacy/index.html; }",
        "location = /confidentialite {\n"
        + SECURITY_HEADERS.replace(
            "default-src 'self';", "default-src 'self' https://cdn.example.net;"
        )
        + "}",
    )
    assert headers.location_header_problems(dump) == []
    (problem,) = headers.location_csp_problems(dump, OWN)
    assert "server auth.educloud.test location = /confidentialite" in problem
    assert "default-src allows another origin: https://cdn.example.net" in problem


def test_nginx_quoted_braces_and_comments_do_not_confuse_the_parser() -> None:
    text = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        'http { # a comment with { and ;\n map $x $y { "~{a}" 1; }\n'
        " server { listen 443 ssl; server_name a.test;\n"
        ' location ~ "^/x{2}$" { return 404; } } }\n'
    )
    (http,) = headers.load_dump(text)
    assert [d.name for d in http.block or ()] == ["map", "server"]
    assert [s.location for s in headers.header_scopes(text)] == ["", "location ~ ^/x{2}$"]


# --- privacy notice: one row per category, with its own period ----------------------------


def _rendered_notice() -> tuple[str, dict[str, Any]]:
    policies = policy.load(None)
    variables: dict[str, Any] = yaml.safe_load(
        (repo_root() / "roles" / "reverse_proxy" / "defaults" / "main.yml").read_text("utf-8")
    )
    lab = yaml.safe_load(
        (repo_root() / "inventories" / "lab" / "group_vars" / "reverse_proxy.yml").read_text(
            "utf-8"
        )
    )
    variables["reverse_proxy_privacy_notice"] = lab["reverse_proxy_privacy_notice"]
    variables["reverse_proxy_reporting_upstream"] = lab["reverse_proxy_reporting_upstream"]
    variables["reverse_proxy_privacy_retention_categories"] = {
        name: dict(rule) for name, rule in policies.retention.items()
    }
    variables["reverse_proxy_privacy_hosting_providers"] = policies.raw["hosting"]["providers"]
    variables["reverse_proxy_privacy_hosting_declarations"] = []
    variables["ansible_managed"] = "managed by educloud"
    env = transparency._role_environment()
    body = env.get_template(transparency.NOTICE_TEMPLATE).render(**variables)
    return body, {name: dict(rule) for name, rule in policies.retention.items()}


def test_notice_rows_of_the_role_template_state_each_period() -> None:
    body, retention = _rendered_notice()
    assert retention_row_problems(body, retention) == []
    rows = notice_rows(body)
    login = retention["login_events"]
    assert [login["description"], f"{login['retention_days']} jours"] == next(
        row[:2] for row in rows if row and row[0] == login["description"]
    )


def test_notice_with_two_periods_swapped_fails() -> None:
    body, retention = _rendered_notice()
    login, admin = retention["login_events"], retention["admin_events"]
    assert login["retention_days"] != admin["retention_days"]
    cell = {name: f"<td>{escape(retention[name]['description'])}</td><td>" for name in retention}
    swapped = body.replace(
        f"{cell['login_events']}{login['retention_days']} jours",
        f"{cell['login_events']}{admin['retention_days']} jours",
    ).replace(
        f"{cell['admin_events']}{admin['retention_days']} jours",
        f"{cell['admin_events']}{login['retention_days']} jours",
    )
    assert swapped != body
    problems = retention_row_problems(swapped, retention)
    assert sorted(p.split(":")[0] for p in problems) == ["admin_events", "login_events"]
    # Every period still appears somewhere in the page: only a per-row reading sees it.
    assert f"{login['retention_days']} jours" in swapped


def test_notice_without_a_category_or_its_period_fails() -> None:
    retention = {
        "a": {"description": "Données A", "retention_days": 30},
        "b": {"description": "Données B", "retention_days": 90},
    }
    body = (
        "<table><tr><td>Données A</td><td>30 jours</td></tr>"
        "<tr><td>Données B</td><td>jusqu'à la fin</td></tr></table>"
        "<ul><li>Données A : 90 jours"
    )
    assert retention_row_problems(body, retention) == [
        "a: its row states 90 jours, the policy 30 jours",
        "b: its row states aucune durée, the policy 90 jours",
    ]
    assert retention_row_problems("<p>Données A 30 jours</p>", retention)[0].startswith(
        "a: no row of the notice names"
    )


# --- pages loaded in the browser ----------------------------------------------------------


def test_browser_error_status_and_no_answer_fail() -> None:
    assert browser.status_problems(browser.PageVisit("u", status=200)) == []
    assert browser.status_problems(browser.PageVisit("u", status=302)) == []
    assert browser.status_problems(browser.PageVisit("u", final_url="u", status=404)) == [
        "u answered HTTP 404 (u)"
    ]
    assert browser.status_problems(browser.PageVisit("u", error="net::ERR_CONNECTION_REFUSED")) == [
        "u gave no response (net::ERR_CONNECTION_REFUSED)"
    ]


def test_browser_websockets_and_csp_refused_loads_count() -> None:
    visit = browser.PageVisit(
        "https://auth.educloud.test/",
        status=200,
        requested=["https://auth.educloud.test/", "wss://push.example.net/socket"],
        refused_by_csp=["https://cdn.example.net/x.js", "https://auth.educloud.test/a.js"],
    )
    assert browser.third_party_requests(visit, OWN) == [
        "wss://push.example.net/socket",
        "https://cdn.example.net/x.js (refused by the CSP)",
    ]
    assert "wss://push.example.net" in visit.origins
    problems = browser.page_problems(visit, OWN)
    assert problems == [
        "https://auth.educloud.test/ contacts outside the deployment: "
        "wss://push.example.net/socket, https://cdn.example.net/x.js (refused by the CSP)"
    ]


def test_browser_page_problems_gather_status_and_cookies() -> None:
    visit = browser.PageVisit(
        "https://cloud.educloud.test/",
        status=500,
        final_url="https://cloud.educloud.test/",
        cookies=[browser.Cookie("oc_session", "cloud.educloud.test", False)],
    )
    assert browser.page_problems(visit, OWN) == [
        "https://cloud.educloud.test/ answered HTTP 500 (https://cloud.educloud.test/)",
        "https://cloud.educloud.test/: cookie oc_session (cloud.educloud.test) lacks Secure",
    ]


# --- Nextcloud apps: an allow list ----------------------------------------------------------


def test_apps_outside_the_allow_list_fail() -> None:
    allowed = ["user_oidc", "files_sharing"]
    assert nextcloud.unlisted_apps(["files", "dav", "user_oidc", "files_sharing"], allowed) == []
    # Neither denied nor allowed: an allow list catches what a deny list never named.
    assert nextcloud.unlisted_apps(["user_oidc", "files_external", "circles"], allowed) == [
        "circles",
        "files_external",
    ]


def test_always_enabled_apps_match_the_role() -> None:
    defaults = yaml.safe_load(
        (repo_root() / "roles" / "nextcloud" / "defaults" / "main.yml").read_text("utf-8")
    )
    assert set(defaults["nextcloud_apps_always_enabled"]) == nextcloud.ALWAYS_ENABLED_APPS


def test_allowed_apps_from_the_inventory_or_the_role(tmp_path: Path) -> None:
    role = repo_root() / "roles" / "nextcloud" / "defaults" / "main.yml"
    assert nextcloud.allowed_apps({"nextcloud_apps_allowed": ["a", "b"]}, role) == ["a", "b"]
    assert "user_oidc" in nextcloud.allowed_apps({}, role)
    with pytest.raises(EducloudError, match="templated"):
        nextcloud.allowed_apps({"nextcloud_apps_allowed": ["{{ apps }}"]}, role)
    with pytest.raises(EducloudError, match="not a list"):
        nextcloud.allowed_apps({"nextcloud_apps_allowed": "user_oidc"}, role)
