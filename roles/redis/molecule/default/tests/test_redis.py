"""Behaviour of the redis role on a converged host, in the host's redis_mode (testinfra).

`educloud summary` and tests/run-all.sh run this file against an inventory, where only the
hosts of the redis group are in scope: the lab's edu1 runs a local Redis (the unix socket
only), the regional lab's database hosts a replicated one with Sentinel. The nextcloud
scenario runs it on its host (local mode); this role's own scenario proves replication and
a failover with verify.yml.
"""

from __future__ import annotations

import hashlib
import ipaddress
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud.hostscope import skip_unless_in_group

ROLE_DEFAULTS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "defaults" / "main.yml").read_text(encoding="utf-8")
)
# redis.conf holds every setting in both modes: the password (and, replicated, CONFIG's
# name) is read there, on the host, so that it never appears on a command line. Earlier
# releases kept a replicated Redis's settings in FORMER_SETTINGS_FILE.
CONFIG_FILE = "/etc/redis/redis.conf"
FORMER_SETTINGS_FILE = "/etc/redis/educloud.conf"
SENTINEL_FILE = "/etc/redis/sentinel.conf"
# Shell that sets CONFIG_NAME to the name redis.conf gives CONFIG (replicated).
READ_CONFIG_NAME = (
    'CONFIG_NAME="$('
    + shlex.join(["sed", "-n", r"s/^rename-command CONFIG \(.*\)$/\1/p", CONFIG_FILE])
    + ')"'
)
FIREWALL_FILE = "/etc/nftables.d/redis.nft"


@pytest.fixture(autouse=True)
def redis_host_only(host):
    """Skip hosts outside the redis group (molecule platforms, named mol-*, are in scope)."""
    skip_unless_in_group(host.ansible.get_variables(), "redis")


def _render(host, name: str, value: Any) -> Any:
    """An inventory value as the play sees it (get_variables() leaves "{{ ... }}" as is)."""
    if isinstance(value, str) and "{{" in value:
        return host.ansible("ansible.builtin.debug", f"var={name}", check=False)[name]
    return value


@pytest.fixture
def settings(host) -> dict[str, Any]:
    """The role's plain settings as the host gets them: defaults, overlaid by the inventory."""
    variables = host.ansible.get_variables()
    names = [
        "redis_mode",
        "redis_socket",
        "redis_port",
        "redis_sentinel_port",
        "redis_sentinel_master_name",
        "redis_maxmemory_mb",
        "redis_maxmemory_policy",
    ]
    return {name: _render(host, name, variables.get(name, ROLE_DEFAULTS[name])) for name in names}


@pytest.fixture
def local(settings) -> None:
    if settings["redis_mode"] != "local":
        pytest.skip(f"redis_mode {settings['redis_mode']}: checks of a local Redis")


@pytest.fixture
def replicated(settings) -> None:
    if settings["redis_mode"] != "replicated":
        pytest.skip(f"redis_mode {settings['redis_mode']}: checks of a replicated Redis")


def _address(variables: dict[str, Any]) -> str:
    """The member's cluster address, as the role computes it (vars/main.yml)."""
    return str(variables.get("educloud_private_address") or variables["ansible_host"])


def _members(variables: dict[str, Any]) -> list[str]:
    """The members' inventory names (redis_members, or the group redis)."""
    names = variables.get("redis_members")
    return list(names) if isinstance(names, list) else list(variables["groups"]["redis"])


@pytest.fixture
def redis(settings) -> list[str]:
    """redis-cli's target: the socket (local), or Redis on the loopback (replicated)."""
    if settings["redis_mode"] == "local":
        return ["-s", str(settings["redis_socket"])]
    return ["-h", "127.0.0.1", "-p", str(settings["redis_port"])]


def _redis_cli(host, target: list[str], *args: str, authenticated: bool = True):
    """redis-cli on the host. Authenticated, the password goes from the settings file into
    REDISCLI_AUTH inside the host's shell (on no command line), and its SHA-256 is printed
    first, for comparison with the inventory's."""
    redis_cli = shlex.join(["redis-cli", "--no-auth-warning", *target, *args])
    if not authenticated:
        return host.run(f"env -u REDISCLI_AUTH {redis_cli}")
    read_password = shlex.join(["sed", "-n", r's/^requirepass "\(.*\)"$/\1/p', CONFIG_FILE])
    return host.run(
        f'REDISCLI_AUTH="$({read_password})" && export REDISCLI_AUTH '
        """&& printf '%s' "$REDISCLI_AUTH" | sha256sum """
        f"&& {redis_cli}"
    )


def _renamed_config(host, target: list[str], *args: str):
    """CONFIG ARGS under the name redis.conf gives it (replicated), read on the host: the
    name never appears on a command line either."""
    redis_cli = shlex.join(["redis-cli", "--no-auth-warning", *target])
    read_password = shlex.join(["sed", "-n", r's/^requirepass "\(.*\)"$/\1/p', CONFIG_FILE])
    return host.run(
        f'REDISCLI_AUTH="$({read_password})" && export REDISCLI_AUTH && {READ_CONFIG_NAME} '
        '&& test -n "$CONFIG_NAME" '
        f'&& echo && {redis_cli} "$CONFIG_NAME" {shlex.join(args)}'
    )


def _answer(result) -> list[str]:
    """redis-cli's reply lines, after the password digest line."""
    assert result.rc == 0, result.stderr
    return result.stdout.splitlines()[1:]


def _setting(host, target: list[str], name: str) -> list[str]:
    """[name, value] of a running setting. Replicated: CONFIG GET, renamed. Local, CONFIG is refused
    (test_local_redis_refuses_config) and the unit restarted after the file last changed
    (test_local_redis_runs_its_file): the file's directive is the running value."""
    if target[0] != "-s":
        return _answer(_renamed_config(host, target, "get", name))
    for line in host.file(CONFIG_FILE).content_string.splitlines():
        directive, _, value = line.partition(" ")
        if directive == name:
            return [name, value.strip().strip('"')]
    return [name, "(not set)"]


def _inventory_password_sha256(host) -> str:
    # Only the digest leaves this frame: a failing assertion never prints the password.
    configured = host.ansible.get_variables()["redis_password"]
    password = str(_render(host, "redis_password", configured))
    return hashlib.sha256(password.encode()).hexdigest()


def _listening_addresses(host, port: int) -> set[str]:
    """The addresses something listens on at TCP `port` (`ss -Htln`)."""
    addresses = set()
    for line in host.check_output("ss -Htln").splitlines():
        address, _, listened = line.split()[3].rpartition(":")
        if listened == str(port):
            addresses.add(address.strip("[]"))
    return addresses


# --- Both modes ---------------------------------------------------------------------------


def test_redis_server_enabled_and_running(host):
    service = host.service("redis-server")
    assert service.is_enabled
    assert service.is_running


def test_settings_file_is_the_roles_and_private(host, settings):
    """One file, every setting in it (Lynis reads redis.conf only); replicated, CONFIG
    REWRITE writes it as the redis user."""
    config = host.file(CONFIG_FILE)
    owner = "root" if settings["redis_mode"] == "local" else "redis"
    assert (config.user, config.group, config.mode) == (owner, "redis", 0o640)
    assert not host.file(FORMER_SETTINGS_FILE).exists
    directives = [line.split()[0] for line in config.content_string.splitlines() if line.strip()]
    assert "include" not in directives
    for directive in ("requirepass", "rename-command", "bind"):
        assert directive in directives, directive


def test_refuses_a_client_without_password(host, redis):
    result = _redis_cli(host, redis, "ping", authenticated=False)
    assert result.stdout.startswith("NOAUTH"), result.stdout + result.stderr


def test_answers_the_inventory_password(host, redis):
    result = _redis_cli(host, redis, "ping")
    assert result.rc == 0, result.stderr
    digest = result.stdout.split("\n", 1)[0].split()[0]
    assert digest == _inventory_password_sha256(host), "Redis requires another password"
    assert _answer(result) == ["PONG"]


@pytest.mark.parametrize(("name", "value"), [("save", ""), ("appendonly", "no")])
def test_persists_nothing(host, redis, name, value):
    # Caches, locks and sessions only: no pupils' data at rest.
    assert _setting(host, redis, name) == [name, value]


def test_memory_is_bounded_with_the_roles_policy(host, settings, redis):
    # INFO memory reads the running values in both modes.
    info = dict(
        line.split(":", 1)
        for line in _answer(_redis_cli(host, redis, "info", "memory"))
        if ":" in line
    )
    assert info["maxmemory"] == str(int(settings["redis_maxmemory_mb"]) * 1024 * 1024)
    assert info["maxmemory_policy"] == settings["redis_maxmemory_policy"]


# --- Local: this server's own Redis, on its unix socket only --------------------------------


def test_local_redis_has_no_tcp_listener(host, redis, local):
    assert _setting(host, redis, "port") == ["port", "0"]
    assert "redis-server" not in host.check_output("ss -Htlnp")


def test_local_redis_refuses_config(host, redis, local):
    """CONFIG SET dir and dbfilename would let anyone with the password write a file
    anywhere Redis may write: the command does not exist (Lynis DBS-1886)."""
    for args in (("config", "get", "port"), ("config", "set", "dir", "/var/lib/redis")):
        result = _redis_cli(host, redis, *args)
        # redis-cli prints an error reply on stdout (and exits 1 from Redis 7 on).
        reply = result.stdout.splitlines()[1:]
        assert reply and reply[0].startswith("ERR unknown command"), result.stdout + result.stderr


def test_local_redis_runs_its_file(host, local):
    """The unit started after redis.conf last changed: the file is what runs."""
    started = host.check_output(
        "systemctl show -P ActiveEnterTimestamp redis-server | xargs -I{} date -d {} +%s"
    )
    changed = host.check_output(f"stat -c %Y {CONFIG_FILE}")
    assert int(started) >= int(changed)


def test_local_socket_only_for_the_redis_group(host, settings, local):
    socket = host.file(str(settings["redis_socket"]))
    assert socket.is_socket
    assert (socket.user, socket.group, socket.mode) == ("redis", "redis", 0o770)


def test_local_redis_runs_no_sentinel(host, settings, local):
    assert not host.package("redis-sentinel").is_installed
    assert not _listening_addresses(host, int(settings["redis_sentinel_port"]))


def test_local_redis_opens_nothing_in_the_firewall(host, local):
    assert not host.file(FIREWALL_FILE).exists


# --- Replicated: members with Sentinel ----------------------------------------------------


def test_sentinel_enabled_and_running(host, replicated):
    service = host.service("redis-sentinel")
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("port", ["redis_port", "redis_sentinel_port"])
def test_replicated_listens_on_the_member_address_and_loopback_only(
    host, settings, replicated, port
):
    expected = {_address(host.ansible.get_variables()), "127.0.0.1"}
    assert _listening_addresses(host, int(settings[port])) == expected


def test_the_sentinels_master_has_every_other_member_as_replica(host, settings, replicated):
    sentinel = ["-h", "127.0.0.1", "-p", str(settings["redis_sentinel_port"])]
    name = str(settings["redis_sentinel_master_name"])
    answer = _answer(_redis_cli(host, sentinel, "sentinel", "get-master-addr-by-name", name))
    assert len(answer) == 2, answer
    master = ["-h", str(ipaddress.ip_address(answer[0])), "-p", answer[1]]
    replication = _answer(_redis_cli(host, master, "info", "replication"))
    members = _members(host.ansible.get_variables())
    assert "role:master" in replication
    assert f"connected_slaves:{len(members) - 1}" in replication


def test_replicated_redis_hides_config_from_clients(host, redis, replicated):
    """A client with the password (an application server holds it) cannot reach CONFIG
    under its own name; the name redis.conf gives it works, and Sentinel knows it."""
    for args in (("config", "get", "port"), ("config", "set", "dir", "/var/lib/redis")):
        result = _redis_cli(host, redis, *args)
        reply = result.stdout.splitlines()[1:]
        assert reply and reply[0].startswith("ERR unknown command"), result.stdout + result.stderr
    assert _answer(_renamed_config(host, redis, "get", "maxmemory-policy"))[0] == (
        "maxmemory-policy"
    )


def test_the_sentinel_sends_config_under_its_name(host, settings, replicated):
    """At a failover the Sentinel sends CONFIG REWRITE: under the name redis.conf gives it
    (the line Sentinel persists; compared on the host, never printed)."""
    name = str(settings["redis_sentinel_master_name"])
    line = shlex.quote(f"sentinel rename-command {name} CONFIG ")
    result = host.run(
        f'{READ_CONFIG_NAME} && test -n "$CONFIG_NAME" '
        f'&& grep -qxF -- {line}"$CONFIG_NAME" {SENTINEL_FILE}'
    )
    assert result.rc == 0, "sentinel.conf lacks the rename-command of redis.conf's CONFIG name"


def test_replicated_firewall_opens_redis_and_sentinel(host, settings, replicated):
    rules = host.file(FIREWALL_FILE).content_string
    assert f"tcp dport {{ {settings['redis_port']}, {settings['redis_sentinel_port']} }}" in rules
