"""The reverse_proxy role's path filters and default servers (issue #29): what it refuses
in the inventory, and the nginx configuration it writes for them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.unit.role_validation import render_role_template, validate_role

from educloud import policy
from educloud.paths import inventories_dir

KEYCLOAK = {
    "name": "auth.example.test",
    "upstream": "http://127.0.0.1:8080",
    "allow_paths": ["/realms/academie/", "/resources/", "/robots.txt"],
}
CLOUD = {"name": "cloud.example.test", "upstream": "http://127.0.0.1:8081", "deny_paths": ["/x/"]}
PLAIN = {"name": "plain.example.test", "upstream": "http://127.0.0.1:8082"}


# The lab's privacy notice: the role refuses to run without one.
NOTICE = yaml.safe_load((inventories_dir() / "lab/group_vars/reverse_proxy.yml").read_text())[
    "reverse_proxy_privacy_notice"
]


def _validate(site: dict[str, object]) -> subprocess.CompletedProcess[str]:
    policies = policy.load().raw
    return validate_role(
        "reverse_proxy",
        {
            "reverse_proxy_sites": [site],
            "reverse_proxy_privacy_notice": NOTICE,
            "reverse_proxy_privacy_retention_categories": policies["retention"]["categories"],
            "reverse_proxy_privacy_hosting_providers": policies["hosting"]["providers"],
        },
    )


def test_allowed_paths_accepted() -> None:
    result = _validate(KEYCLOAK)
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(
    "paths",
    [
        ["/"],
        ["/realms/%2e%2e/"],
        ["/realms/../admin/"],
        ["/a;", "/a"],
    ],
)
def test_bad_allowed_paths_refused(paths: list[str]) -> None:
    result = _validate(KEYCLOAK | {"allow_paths": paths})
    assert result.returncode != 0
    assert "allow_paths must be distinct paths" in result.stdout, result.stdout[-2000:]


def test_allowed_path_under_a_denied_one_refused() -> None:
    result = _validate(KEYCLOAK | {"deny_paths": ["/realms/"]})
    assert result.returncode != 0
    assert "none\nunder a denied path" in result.stdout or "under a denied path" in result.stdout


@pytest.fixture(scope="module")
def nginx_conf(tmp_path_factory: pytest.TempPathFactory) -> str:
    rendered = tmp_path_factory.mktemp("nginx") / "nginx.conf"
    result = render_role_template(
        "reverse_proxy",
        "nginx.conf.j2",
        rendered,
        {"reverse_proxy_sites": [KEYCLOAK, CLOUD, PLAIN]},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return Path(rendered).read_text()


def _server(conf: str, name: str) -> str:
    start = conf.index(f"server_name {name};")
    end = conf.find("\n    # ", start)
    return conf[start : end if end > 0 else len(conf)]


def test_allowed_paths_forward_the_normalised_path_and_nothing_else(nginx_conf: str) -> None:
    server = _server(nginx_conf, "auth.example.test")
    assert "location ^~ /realms/academie/ {" in server
    assert "proxy_pass http://127.0.0.1:8080/realms/academie/;" in server
    assert "location = /robots.txt {" in server
    assert re.search(
        r"location / \{\s*# Only the paths above are served \(allow_paths\)\.\s*return 404;", server
    )
    # No proxy_pass without a URI: that would hand Keycloak the client's raw bytes.
    assert not re.search(r"proxy_pass http://127\.0\.0\.1:8080;", server)


def test_a_site_with_denied_paths_forwards_the_normalised_path(nginx_conf: str) -> None:
    server = _server(nginx_conf, "cloud.example.test")
    assert "location ^~ /x/ {" in server
    assert "proxy_pass http://127.0.0.1:8081/;" in server


def test_a_site_without_filters_forwards_the_raw_path(nginx_conf: str) -> None:
    # Nothing to bypass, and a service (Nextcloud's WebDAV) gets file names as sent.
    assert "proxy_pass http://127.0.0.1:8082;" in _server(nginx_conf, "plain.example.test")


def test_unknown_names_get_421_on_both_ports(nginx_conf: str) -> None:
    defaults = re.findall(r"listen (80|443)[^;]*default_server;.*?\n    \}", nginx_conf, re.S)
    assert sorted(defaults) == ["443", "80"], defaults
    for block in re.findall(
        r"listen (?:80|443)[^;]*default_server;(.*?)\n    \}", nginx_conf, re.S
    ):
        assert "return 421;" in block
        assert "$host" not in block
    assert "server_name auth.example.test cloud.example.test plain.example.test;" in nginx_conf
