"""Keycloak on a converged host: service, sockets, files, sandbox, realm, login page (testinfra)."""

from __future__ import annotations

import json
import re
import shlex
from urllib.parse import urlencode

import pytest

from educloud.hostscope import setting, skip_unless_in_group


@pytest.fixture(autouse=True)
def _only_keycloak_hosts(host):
    skip_unless_in_group(host.ansible.get_variables(), "keycloak")


@pytest.fixture
def kc(host):
    """The role's effective variables on this host."""
    variables = host.ansible.get_variables()
    return {
        # Loopback on one server; the node's cluster address behind the load balancers.
        "address": setting(host, "keycloak_http_host", "127.0.0.1"),
        "config_dir": variables.get("keycloak_config_dir", "/etc/keycloak"),
        "http": variables.get("keycloak_http_port", 8080),
        "management": variables.get("keycloak_management_port", 9000),
        "hostname": variables["keycloak_hostname"],
        "realms": [r["name"] for r in variables.get("keycloak_realms", [])],
        # The role's default, unless the inventory sets its own.
        "privacy_url": variables.get(
            "keycloak_privacy_url", f"{variables['keycloak_hostname']}/confidentialite"
        ),
    }


def test_service_enabled_and_running_as_keycloak(host):
    service = host.service("keycloak")
    assert service.is_enabled
    assert service.is_running
    java = host.process.filter(comm="java", user="keycloak")
    assert java, "no java process runs as the keycloak user"


def test_listens_on_its_address_only(host, kc):
    """keycloak_http_host only: loopback behind the server's own proxy, the node's cluster
    address behind the load balancers (whose firewall opening test_common checks)."""
    for port in (kc["http"], kc["management"]):
        assert host.socket(f"tcp://{kc['address']}:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
        assert not host.socket(f"tcp://:::{port}").is_listening


def test_config_with_db_password_is_not_world_readable(host, kc):
    conf = host.file(f"{kc['config_dir']}/keycloak.conf")
    assert conf.contains("^db-password=")
    assert conf.user == "root"
    assert conf.group == "keycloak"
    assert conf.mode == 0o640
    env = host.file(f"{kc['config_dir']}/keycloak.env")
    assert env.user == "root"
    assert env.mode == 0o600


def test_no_world_readable_file_under_the_config_dir(host, kc):
    found = host.check_output(f"find {kc['config_dir']} -type f -perm -o=r")
    assert found == ""


def test_no_world_readable_file_holds_a_keycloak_secret(host, kc):
    # Settings that carry secrets, wherever a copy of them might land.
    found = host.run(
        "find /etc /opt/keycloak -xdev -type f -perm -o=r -size -1024k "
        "-exec grep -lE '^(db-password|KC_BOOTSTRAP_ADMIN_PASSWORD)=' {} +"
    )
    assert found.stdout.strip() == ""


def test_keycloak_cannot_modify_its_own_code(host):
    assert host.file("/opt/keycloak/current/bin/kc.sh").user == "root"
    probe = host.run("runuser -u keycloak -- test -w /opt/keycloak/current/lib")
    assert probe.rc != 0


def test_unit_is_sandboxed(host):
    shown = host.check_output(
        "systemctl show keycloak -p NoNewPrivileges -p ProtectSystem -p PrivateTmp "
        "-p CapabilityBoundingSet"
    )
    settings = dict(line.split("=", 1) for line in shown.splitlines())
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["PrivateTmp"] == "yes"
    assert settings["CapabilityBoundingSet"] == ""


def test_health_ready_on_management_port(host, kc):
    health = json.loads(
        host.check_output(f"curl -sf http://{kc['address']}:{kc['management']}/health/ready")
    )
    assert health["status"] == "UP"


def test_production_mode_with_postgres(host, kc):
    conf = host.file(f"{kc['config_dir']}/keycloak.conf").content_string
    assert "db=postgres" in conf
    cmdline = host.check_output("ps -o args= -u keycloak")
    assert " start --optimized" in cmdline
    assert "start-dev" not in cmdline


def test_discovery_issuer_is_the_public_hostname(host, kc):
    for realm in kc["realms"]:
        document = json.loads(
            host.check_output(
                f"curl -sf http://{kc['address']}:{kc['http']}/realms/{realm}/.well-known/openid-configuration"
            )
        )
        assert document["issuer"] == f"{kc['hostname']}/realms/{realm}"


def test_login_page_links_to_the_privacy_notice(host, kc):
    """The account console's sign-in page, asked of Keycloak itself, carries the privacy notice
    link (C6)."""
    for realm in kc["realms"]:
        query = urlencode(
            {
                "client_id": "account-console",
                "redirect_uri": f"{kc['hostname']}/realms/{realm}/account/",
                "response_type": "code",
                "scope": "openid",
                # The console requires PKCE; the page is only shown, no code is exchanged.
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }
        )
        url = f"http://{kc['address']}:{kc['http']}/realms/{realm}/protocol/openid-connect/auth?{query}"
        page = host.check_output(f"curl -sf {shlex.quote(url)}")
        href = re.escape(kc["privacy_url"])
        assert re.search(f'<a\\s[^>]*href="{href}"', page), f"realm {realm}: no privacy notice link"
