"""Who an admin site answers, from `nginx -T` (educloud.charter.admin_access): each way
nginx lets a client outside the administrators' networks through is named."""

from __future__ import annotations

import pytest

from educloud.charter.admin_access import admin_site_problems

ADMIN = ["198.18.0.1/32", "192.0.2.0/28"]
SITE = "auth-admin.example.test"


def _dump(server_body: str, http_extra: str = "") -> str:
    return (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "events {}\n"
        "http {\n"
        f"{http_extra}\n"
        "    server {\n"
        "        listen 80;\n"
        f"        server_name {SITE} auth.example.test;\n"
        "        location ^~ /.well-known/acme-challenge/ { root /var/lib/acme; }\n"
        "        location / { return 301 https://$host$request_uri; }\n"
        "    }\n"
        "    server {\n"
        "        listen 443 ssl;\n"
        f"        server_name {SITE};\n"
        f"{server_body}\n"
        "    }\n"
        "}\n"
    )


RULES = "allow 198.18.0.1/32;\n        allow 127.0.0.1/32;\n        deny all;"
GOOD = """
        allow 198.18.0.1/32;
        allow 127.0.0.1/32;
        deny all;
        location / { proxy_pass http://127.0.0.1:8080; }
        location /moderation/api/ { proxy_pass http://127.0.0.1:8090/; }
"""


def test_the_admin_site_as_deployed_is_closed_to_others() -> None:
    assert admin_site_problems(_dump(GOOD), SITE, ADMIN) == []


@pytest.mark.parametrize(
    ("body", "http_extra", "named"),
    [
        (GOOD.replace("allow 198.18.0.1/32;", "allow all;"), "", "allow all"),
        (GOOD.replace("allow 198.18.0.1/32;", "allow 198.18.0.0/24;"), "", "198.18.0.0/24"),
        (GOOD.replace("deny all;", ""), "", "do not end with 'deny all'"),
        (GOOD.replace("deny all;", "deny 203.0.113.0/24;"), "", "do not end with 'deny all'"),
        (
            GOOD.replace(
                "allow 198.18.0.1/32;\n        allow 127.0.0.1/32;\n        deny all;", ""
            ),
            "",
            "no access rule",
        ),
        # A location's own rules replace the server's: a wider one opens that path.
        (
            GOOD + "        location /admin/ { allow 198.18.0.0/16; deny all;"
            " proxy_pass http://127.0.0.1:8080; }\n",
            "",
            "location /admin/: allow 198.18.0.0/16",
        ),
        (
            GOOD + "        location /x/ { deny 203.0.113.9; proxy_pass http://127.0.0.1:8080; }\n",
            "",
            "location /x/: the access rules do not end",
        ),
        (GOOD + "        satisfy any;\n", "", "satisfy any"),
        (
            GOOD + "        set_real_ip_from 0.0.0.0/0;\n        real_ip_header X-Forwarded-For;\n",
            "",
            "set_real_ip_from 0.0.0.0/0",
        ),
        (GOOD, "    set_real_ip_from 198.18.0.0/24;", "http: set_real_ip_from 198.18.0.0/24"),
        (GOOD, "    satisfy any;", "http: satisfy any"),
        (
            GOOD.replace("location / {", "location / { allow all;"),
            "",
            "location /: allow all",
        ),
    ],
    ids=[
        "allow-all",
        "wider-subnet",
        "no-deny-all",
        "ends-with-a-narrow-deny",
        "no-rule",
        "location-with-wider-rules",
        "location-with-rules-not-ending-in-deny-all",
        "satisfy-any",
        "real-ip-from-anyone",
        "real-ip-at-http-level",
        "satisfy-any-at-http-level",
        "allow-all-inside-a-location",
    ],
)
def test_each_opening_is_named(body: str, http_extra: str, named: str) -> None:
    problems = admin_site_problems(_dump(body, http_extra), SITE, ADMIN)
    assert any(named in p for p in problems), problems


def test_a_site_nginx_never_passes_upstream_is_not_a_pass() -> None:
    problems = admin_site_problems(_dump("        return 404;"), SITE, ADMIN)
    assert problems == [f"no place of nginx -T passes {SITE} to an upstream (nothing judged)"]


def test_an_included_file_is_read_where_nginx_includes_it() -> None:
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "http { include /etc/nginx/conf.d/*.conf; }\n"
        "# configuration file /etc/nginx/conf.d/admin.conf:\n"
        f"server {{ listen 443 ssl; server_name {SITE}; allow all;"
        " location / { proxy_pass http://127.0.0.1:8080; } }\n"
    )
    assert any("allow all" in p for p in admin_site_problems(dump, SITE, ADMIN))
