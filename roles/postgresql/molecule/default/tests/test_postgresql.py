"""Behaviour of the postgresql role on a converged host (testinfra).

Molecule runs these checks on its temporary host; `educloud summary` runs the same file
against an inventory, where only the hosts of the postgresql group are in scope.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud.hostscope import setting, skip_unless_in_group

ROLE_DEFAULTS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "defaults" / "main.yml").read_text()
)
CONFIG_DIR = "/etc/postgresql/15/main"
DATA_DIR = "/var/lib/postgresql/15/main"
# Patroni mode (postgresql_patroni_enabled): its configuration, and the files it writes
# in the data directory instead of Debian's configuration directory.
PATRONI_CONFIG = "/etc/patroni/config.yml"
LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(autouse=True)
def postgresql_host_only(host):
    """Skip hosts outside the postgresql group (molecule platforms, named mol-*, have no group)."""
    skip_unless_in_group(host.ansible.get_variables(), "postgresql")


@pytest.fixture
def settings(host) -> dict[str, Any]:
    """The role's variables as the host gets them: defaults, overlaid by the inventory."""
    variables = host.ansible.get_variables()
    return {**ROLE_DEFAULTS, **{k: v for k, v in variables.items() if k.startswith("postgresql_")}}


@pytest.fixture
def login(settings) -> tuple[str, str, str]:
    """A declared role with a readable password, and a database it owns."""
    for user in settings["postgresql_users"]:
        password = user.get("password")
        if not isinstance(password, str) or "{{" in password:
            continue  # vaulted or templated: the inventory alone does not give it
        for database in settings["postgresql_databases"]:
            if database["owner"] == user["name"]:
                return user["name"], password, database["name"]
    pytest.skip("no role of postgresql_users with a plain password owns a database here")


def psql(host, sql: str) -> list[list[str]]:
    """Rows of a query run as postgres through the socket, each a list of columns."""
    output = host.check_output("cd / && runuser -u postgres -- psql -XAtq -d postgres -c %s", sql)
    return [line.split("|") for line in output.splitlines()]


def tls_handshake(host, version_flag: str, ciphers: str = "DEFAULT") -> str:
    """Cipher a TLS handshake with the server on 127.0.0.1:5432 negotiates, "" if refused.

    @SECLEVEL=0 lets the client offer old versions and ciphers, so only the server refuses.
    """
    if not host.exists("openssl"):
        pytest.skip("openssl is not installed")
    result = host.run(
        "openssl s_client -starttls postgres -connect 127.0.0.1:5432 %s -cipher %s < /dev/null",
        version_flag,
        f"{ciphers}:@SECLEVEL=0",
    )
    for line in result.stdout.splitlines():
        if ", Cipher is " in line:
            cipher = line.rsplit(" ", 1)[1]
            return "" if cipher == "(NONE)" else cipher
    return ""


def show(host, setting: str) -> str:
    return psql(host, f"SHOW {setting}")[0][0]


def ping(host, user: str, password: str, database: str, ssl_mode: str = "prefer") -> dict:
    """Log in over 127.0.0.1 with community.postgresql.postgresql_ping.

    The module marks login_password no_log, so the password stays out of the host's journal
    and process list (a psql command line would show it).
    """
    args = {
        "login_host": "127.0.0.1",
        "login_user": user,
        "login_password": password,
        "login_db": database,
        "ssl_mode": ssl_mode,
    }
    return host.ansible("community.postgresql.postgresql_ping", json.dumps(args), check=False)


def patroni_mode(settings: dict[str, Any]) -> bool:
    return settings.get("postgresql_patroni_enabled") is True


def cluster_address(host) -> str:
    variables = host.ansible.get_variables()
    return variables.get("educloud_private_address", variables.get("ansible_host", ""))


def test_service_enabled_and_running(host, settings):
    if patroni_mode(settings):
        assert host.service("patroni").is_enabled
        assert host.service("patroni").is_running
        return
    assert host.service("postgresql").is_enabled
    assert host.service("postgresql@15-main").is_running


def test_listens_only_on_configured_addresses(host, settings):
    configured = settings["postgresql_listen_addresses"]
    if "*" in configured:
        pytest.skip("postgresql_listen_addresses includes '*': every address by design")
    allowed: set[str] = {cluster_address(host)} if patroni_mode(settings) else set()
    for address in configured:
        allowed |= LOOPBACK if address == "localhost" else {address}
    listening = {
        socket.removeprefix("tcp://").rsplit(":", 1)[0]
        for socket in host.socket.get_listening_sockets()
        if socket.startswith("tcp://") and socket.endswith(":5432")
    }
    assert listening, "nothing listens on TCP port 5432"
    assert listening <= allowed


def test_new_passwords_stored_as_scram(host):
    assert show(host, "password_encryption") == "scram-sha-256"


def test_no_role_has_an_md5_password(host):
    md5_roles = psql(host, "SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%'")
    assert md5_roles == []


def test_hba_never_trusts_nor_accepts_md5(host):
    methods = {row[0] for row in psql(host, "SELECT auth_method FROM pg_hba_file_rules")}
    assert methods
    assert not methods & {"trust", "md5", "password", "ident"}


def test_hba_remote_clients_need_tls(host):
    rules = psql(
        host,
        "SELECT type, coalesce(address, '') FROM pg_hba_file_rules WHERE type LIKE 'host%'",
    )
    remote = [(kind, address) for kind, address in rules if address not in LOOPBACK]
    assert all(kind == "hostssl" for kind, _ in remote), remote


def test_declared_user_logs_in_with_its_password(host, login):
    user, password, database = login
    result = ping(host, user, password, database)
    logged_in = result.get("is_available") is True
    assert logged_in, (
        f"{user} could not log in to {database} over 127.0.0.1: {result.get('conn_err_msg')}"
    )


def test_wrong_password_is_refused(host, login):
    user, _, database = login
    result = ping(host, user, secrets.token_urlsafe(16), database)
    assert result.get("is_available") is False
    # The server answered and refused (FATAL), in the cluster's language (lc_messages).
    assert "FATAL" in result.get("conn_err_msg", "")


def test_client_can_require_tls(host, login):
    user, password, database = login
    result = ping(host, user, password, database, ssl_mode="require")
    logged_in = result.get("is_available") is True
    assert logged_in, f"TLS login refused: {result.get('conn_err_msg')}"


def test_tls_below_minimum_version_refused(host):
    # Every supported minimum (TLSv1.2, TLSv1.3) refuses TLS 1.1.
    assert tls_handshake(host, "-tls1_1") == ""


def test_tls_minimum_version_accepted(host, settings):
    version = settings["postgresql_ssl_min_protocol_version"]
    flag = {"TLSv1.2": "-tls1_2", "TLSv1.3": "-tls1_3"}[version]
    assert tls_handshake(host, flag) != ""


def test_tls12_without_forward_secrecy_or_aead_refused(host):
    # CBC with SHA-1 MAC, and RSA key exchange: both outside postgresql_ssl_ciphers.
    assert tls_handshake(host, "-tls1_2", "ECDHE-RSA-AES128-SHA") == ""
    assert tls_handshake(host, "-tls1_2", "AES256-GCM-SHA384") == ""


def test_declared_databases_are_utf8_with_the_locale(host, settings):
    if not settings["postgresql_databases"]:
        pytest.skip("postgresql_databases is empty here")
    rows = psql(
        host,
        "SELECT datname, pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database",
    )
    found = {name: (encoding, collate, ctype) for name, encoding, collate, ctype in rows}
    locale = settings["postgresql_locale"]
    for database in settings["postgresql_databases"]:
        assert found.get(database["name"]) == ("UTF8", locale, locale), database["name"]


def test_only_owners_connect_to_declared_databases(host, settings):
    if not settings["postgresql_databases"]:
        pytest.skip("postgresql_databases is empty here")
    # has_database_privilege accepts the pseudo-role public: what every role may do.
    query = "SELECT datname FROM pg_database WHERE has_database_privilege('public', oid, 'CONNECT')"
    public = {row[0] for row in psql(host, query)}
    declared = {database["name"] for database in settings["postgresql_databases"]}
    assert not declared & public


@pytest.mark.parametrize(
    "path", [f"{CONFIG_DIR}/pg_hba.conf", f"{CONFIG_DIR}/conf.d/educloud.conf", DATA_DIR]
)
def test_sensitive_files_not_world_readable(host, settings, path):
    if patroni_mode(settings):
        # Patroni writes pg_hba.conf and postgresql.conf in the data directory.
        path = {
            f"{CONFIG_DIR}/pg_hba.conf": f"{DATA_DIR}/pg_hba.conf",
            f"{CONFIG_DIR}/conf.d/educloud.conf": PATRONI_CONFIG,
        }.get(path, path)
    item = host.file(path)
    assert item.exists
    assert item.user == "postgres"
    assert item.mode & 0o007 == 0


def test_tls_key_not_world_readable(host, settings):
    key = host.file(settings["postgresql_ssl_key_file"])
    assert key.exists
    assert key.mode & 0o007 == 0


def test_shared_buffers_follow_host_memory(host, settings):
    # ansible_facts['memtotal_mb'] is MemTotal of /proc/meminfo in MB, rounded down.
    memtotal_kb = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    memtotal_mb = memtotal_kb // 1024
    share = memtotal_mb * settings["postgresql_shared_buffers_percent"] // 100
    expected_mb = max(min(share, settings["postgresql_shared_buffers_max_mb"]), 128)
    running_mb = psql(host, "SELECT pg_size_bytes(current_setting('shared_buffers')) / 1048576")
    assert int(running_mb[0][0]) == expected_mb


def test_tls_on(host):
    assert show(host, "ssl") == "on"


def test_logs_hold_connections_but_no_statements_or_values(host, settings):
    assert show(host, "log_connections") == "on"
    assert show(host, "log_statement") == "none"
    assert show(host, "log_parameter_max_length") == "0"
    assert show(host, "log_parameter_max_length_on_error") == "0"
    if not settings["postgresql_log_failed_statements"]:
        assert show(host, "log_min_error_statement") == "panic"


def test_running_server_matches_its_files(host):
    assert psql(host, "SELECT name FROM pg_settings WHERE pending_restart") == []
    assert psql(host, "SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL") == []


def test_firewall_opens_postgresql_to_hba_clients_only(host, settings):
    chain = host.run("nft list chain inet educloud roles_input")
    if chain.rc != 0:
        pytest.skip("the common role's firewall (table inet educloud) is not loaded")
    opened = {
        line.split(" saddr ", 1)[1].split()[0]
        for line in chain.stdout.splitlines()
        if "dport 5432" in line and " saddr " in line
    }
    # Rendered: a regional inventory's entries are templates over other hosts' addresses.
    entries = setting(host, "postgresql_hba_entries", settings["postgresql_hba_entries"])
    declared = {entry["address"].removesuffix("/32").removesuffix("/128") for entry in entries}
    if patroni_mode(settings):
        # The members replicate from each other; the cluster lists their addresses.
        members = host.ansible(
            "ansible.builtin.uri", "url=http://127.0.0.1:8008/cluster", check=False
        )
        declared |= {member["host"] for member in members.get("json", {}).get("members", [])}
    assert opened == declared
