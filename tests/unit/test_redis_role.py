"""The redis role's two modes and its input checks, without a server (issue #23).

`redis_mode: local` is one server's own Redis (the unix socket only, no Sentinel, no
firewall opening), `replicated` the regional group with Sentinel. The settings file is
rendered by the real Ansible with the role's defaults and read line by line as Redis reads
it; the input checks run the role's tasks/validate.yml on this machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tests.unit.role_validation import render_role_template, run_playbook, validate_role

from educloud.paths import repo_root

ROLE = repo_root() / "roles" / "redis"
LOCAL = {"redis_mode": "local", "redis_password": "redis-password-0123456"}
PASSWORD = LOCAL["redis_password"]
COMMAND = "config-name-0123456789"
REPLICATED = {
    "redis_mode": "replicated",
    "redis_password": PASSWORD,
    "redis_config_command": COMMAND,
    "redis_address": "198.18.0.24",
    "redis_current_master": "198.18.0.25",
    "redis_settings_sha256": "0" * 64,
}


def _directives(path: Path) -> dict[str, list[str]]:
    """The file as Redis reads it: directive -> arguments (comments and blanks left out)."""
    directives: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *arguments = line.split()
            assert name not in directives, f"{name} set twice in {path.name}"
            directives[name] = arguments
    return directives


def _render(tmp_path: Path, template: str, variables: dict[str, object]) -> Path:
    rendered = tmp_path / template.removesuffix(".j2")
    result = render_role_template("redis", template, rendered, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    return rendered


# --- redis.conf ----------------------------------------------------------------------------


def test_local_redis_listens_on_its_socket_only(tmp_path: Path) -> None:
    settings = _directives(_render(tmp_path, "redis.conf.j2", LOCAL))
    assert settings["port"] == ["0"]
    # Were a port set, the loopback only (Lynis DBS-1888).
    assert settings["bind"] == ["127.0.0.1", "-::1"]
    assert settings["unixsocket"] == ["/run/redis/redis-server.sock"]
    assert settings["unixsocketperm"] == ["770"]
    assert settings["protected-mode"] == ["yes"]
    assert settings["requirepass"] == [f'"{PASSWORD}"']


def test_local_redis_persists_nothing_replicates_nothing_and_is_bounded(tmp_path: Path) -> None:
    settings = _directives(_render(tmp_path, "redis.conf.j2", LOCAL))
    assert settings["save"] == ['""']
    assert settings["appendonly"] == ["no"]
    assert settings["maxmemory"] == ["256mb"]
    assert settings["maxmemory-policy"] == ["volatile-lru"]
    replication = [name for name in settings if re.match(r"(masterauth|replica|repl-)", name)]
    assert replication == []


def test_local_socket_follows_redis_socket(tmp_path: Path) -> None:
    variables = {**LOCAL, "redis_socket": "/run/redis/educloud.sock"}
    settings = _directives(_render(tmp_path, "redis.conf.j2", variables))
    assert settings["unixsocket"] == ["/run/redis/educloud.sock"]


def test_local_redis_refuses_config_and_replicated_hides_it_from_clients(
    tmp_path: Path,
) -> None:
    # CONFIG SET dir/dbfilename writes files anywhere Redis may (Lynis DBS-1886).
    local = _directives(_render(tmp_path, "redis.conf.j2", LOCAL))
    assert local["rename-command"] == ["CONFIG", '""']
    replicated = _directives(_render(tmp_path, "redis.conf.j2", REPLICATED))
    assert replicated["rename-command"] == ["CONFIG", COMMAND]
    sentinel = (
        _render(tmp_path, "sentinel.conf.j2", REPLICATED).read_text(encoding="utf-8").splitlines()
    )
    assert f"sentinel rename-command educloud CONFIG {COMMAND}" in sentinel


def test_replicated_redis_conf_records_the_settings_sha256(tmp_path: Path) -> None:
    text = _render(tmp_path, "redis.conf.j2", REPLICATED).read_text(encoding="utf-8")
    assert f"# educloud-settings-sha256 {'0' * 64}" in text.splitlines()
    local = _render(tmp_path, "redis.conf.j2", LOCAL).read_text(encoding="utf-8")
    assert "educloud-settings-sha256" not in local


def test_replicated_redis_listens_on_the_loopback_first_and_connects_from_its_address(
    tmp_path: Path,
) -> None:
    # Lynis DBS-1888 wants the loopback first; a replica still reaches its master from the
    # member's address (bind-source-addr).
    settings = _directives(_render(tmp_path, "redis.conf.j2", REPLICATED))
    assert settings["bind"] == ["127.0.0.1", "198.18.0.24"]
    assert settings["bind-source-addr"] == ["198.18.0.24"]
    assert settings["port"] == ["6379"]
    assert settings["masterauth"] == [f'"{PASSWORD}"']
    assert settings["repl-diskless-sync"] == ["yes"]
    assert settings["replicaof"] == ["198.18.0.25", "6379"]
    assert "unixsocket" not in settings
    assert "include" not in settings


def test_the_first_master_replicates_nothing(tmp_path: Path) -> None:
    variables = {**REPLICATED, "redis_current_master": "198.18.0.24"}
    assert "replicaof" not in _directives(_render(tmp_path, "redis.conf.j2", variables))


def test_templates_say_they_are_managed(tmp_path: Path) -> None:
    for template, variables in (("redis.conf.j2", LOCAL), ("sentinel.conf.j2", REPLICATED)):
        text = _render(tmp_path, template, variables).read_text(encoding="utf-8")
        assert text.startswith("#\n# Ansible managed\n#\n# Reads: "), template


# --- Input checks --------------------------------------------------------------------------


def test_local_redis_passes() -> None:
    result = validate_role("redis", LOCAL)
    assert result.returncode == 0, result.stdout + result.stderr


def test_replicated_redis_passes(tmp_path: Path) -> None:
    members = {
        "localhost": {"ansible_host": "198.18.0.24"},
        "rdb2": {"ansible_host": "198.18.0.25"},
    }
    result = validate_role("redis", REPLICATED, _group(tmp_path, members))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"redis_mode": "standalone"}, "choose local"),
        (
            {"redis_socket": "/var/run/redis.sock"},
            "redis_socket must be a file name under /run/redis",
        ),
        ({"redis_client_allowed_addresses": ["198.18.0.21"]}, "must stay empty (no port is opened"),
    ],
)
def test_what_a_local_redis_cannot_honour_is_refused(
    extra: dict[str, object], message: str
) -> None:
    result = validate_role("redis", {**LOCAL, **extra})
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())


def test_a_weak_password_is_refused_without_being_shown() -> None:
    result = validate_role("redis", {**LOCAL, "redis_password": "short pass"})
    assert result.returncode != 0
    assert "Refuse a missing or weak Redis password" in result.stdout
    assert "short pass" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["", "short-name", "has a space 0123456", PASSWORD])
def test_a_weak_config_name_is_refused_without_being_shown(command: str) -> None:
    variables = {**REPLICATED, "redis_config_command": command}
    result = validate_role("redis", variables)
    assert result.returncode != 0
    assert "Refuse a missing or weak name for CONFIG" in result.stdout
    if command:
        assert command not in result.stdout + result.stderr


def _group(tmp_path: Path, members: dict[str, dict[str, object]]) -> Path:
    """Hosts of the group redis (never contacted: the checks run on the controller)."""
    hosts = {
        name: {"ansible_connection": "local", **hostvars} for name, hostvars in members.items()
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"children": {"redis": {"hosts": hosts}}}}), encoding="utf-8"
    )
    return inventory


def test_a_replicated_member_set_holding_a_local_redis_is_refused(tmp_path: Path) -> None:
    inventory = _group(
        tmp_path,
        {
            "localhost": {"ansible_host": "198.18.0.24"},
            "rdb2": {"ansible_host": "198.18.0.25"},
            "edu1": {"ansible_host": "198.18.0.11", "redis_mode": "local"},
        },
    )
    variables = {"redis_password": PASSWORD, "redis_config_command": COMMAND}
    result = validate_role("redis", variables, inventory)
    assert result.returncode != 0
    assert "holds hosts with redis_mode local (edu1)" in " ".join(result.stdout.split())


# --- Firewall peers (ansible/group_vars/all/policies.yml) ----------------------------------

PEERS = """
- name: Record each host's peer services
  hosts: redis
  gather_facts: false
  vars_files:
    - {policies}
  tasks:
    - name: Write common_egress_peers
      ansible.builtin.copy:
        content: "{{{{ common_egress_peers | to_json }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0600"
"""


def _peers(tmp_path: Path, mode: str) -> dict[str, list[dict[str, object]]]:
    out = tmp_path / "out"
    out.mkdir()
    playbook = tmp_path / "peers.yml"
    policies = repo_root() / "ansible" / "group_vars" / "all" / "policies.yml"
    playbook.write_text(PEERS.format(policies=policies, out=out), encoding="utf-8")
    members = {
        "localhost": {"ansible_host": "198.18.0.24", "redis_mode": mode},
        "rdb2": {"ansible_host": "198.18.0.25", "redis_mode": mode},
    }
    result = run_playbook(playbook, str(_group(tmp_path, members)), {})
    assert result.returncode == 0, result.stdout + result.stderr
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


@pytest.mark.charter("C10")
def test_a_local_redis_reaches_no_peer(tmp_path: Path) -> None:
    peers = _peers(tmp_path, "local")
    assert peers == {"localhost": [], "rdb2": []}


@pytest.mark.charter("C10")
def test_replicated_members_reach_each_other_on_redis_and_sentinel(tmp_path: Path) -> None:
    peers = _peers(tmp_path, "replicated")
    assert peers["localhost"] == [
        {"name": "redis", "addresses": ["198.18.0.25"], "protocol": "tcp", "ports": [6379, 26379]}
    ]


# --- The tasks ----------------------------------------------------------------------------


def test_local_mode_skips_the_sentinel_steps() -> None:
    main = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))
    by_file = {task["ansible.builtin.import_tasks"]: task.get("when", []) for task in main}
    for sentinel_file in ("master.yml", "sentinel.yml"):
        assert "redis_mode == 'replicated'" in by_file[sentinel_file], sentinel_file
