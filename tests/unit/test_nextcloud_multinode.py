"""The nextcloud role on several nodes, without a server: shared Redis, PHP sessions in Redis,
S3 primary storage, one background jobs host, and the checks that refuse a bad inventory.

The templates are rendered by Ansible for an inventory whose group nextcloud has two hosts
(both local, never contacted), then read as Nextcloud and PHP-FPM read them: the config file
by the PHP CLI, the pool file by PHP's INI parser.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from tests.unit.php_support import PHP, php_config
from tests.unit.role_validation import run_playbook

from educloud.paths import repo_root

PLAYBOOKS = Path(__file__).parent / "playbooks"

SECRETS = {
    "nextcloud_hostname": "cloud.academie.test",
    "nextcloud_db_password": "db-password-0123",
    "nextcloud_admin_password": "admin-password-0123",
    # Characters that must survive PHP quoting and the session URL.
    "nextcloud_redis_password": "redis'pass/w&rd=x\\y%?0123",
}
# The pool's size comes from the host's memory (not gathered by these playbooks).
FPM_SIZE = {
    "nextcloud_fpm_children": 10,
    "nextcloud_fpm_start_servers": 2,
    "nextcloud_fpm_min_spare": 1,
    "nextcloud_fpm_max_spare": 3,
}
S3 = {
    "bucket": "educloud-files",
    "hostname": "s3.gra.io.cloud.ovh.net",
    "region": "gra",
    "use_path_style": True,
    "key": "EXAMPLEKEY0123",
    "secret": "s3-secret'with\\quote-0123456789",
}
OBJECT_STORAGE = {
    "name": "s3-france",
    "purpose": "object_storage",
    "description": "Stockage objet",
    "address": "198.51.100.0/24",
    "port": 443,
    "protocol": "tcp",
    "country": "FR",
}
MULTINODE = {
    **SECRETS,
    "nextcloud_redis_host": "198.18.0.21",
    "nextcloud_redis_port": 6380,
    "nextcloud_objectstore_s3": S3,
    "nextcloud_objectstore_egress_destinations": [OBJECT_STORAGE],
}


def _inventory(tmp_path: Path, nodes: int) -> Path:
    """Group nextcloud with `nodes` hosts; localhost is the first (the playbooks run on it)."""
    hosts: dict[str, Any] = {"localhost": {"ansible_connection": "local"}}
    for index in range(2, nodes + 1):
        hosts[f"nc{index}"] = {"ansible_connection": "local"}
    inventory = tmp_path / f"inventory-{nodes}.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"children": {"nextcloud": {"hosts": hosts}}}}), encoding="utf-8"
    )
    return inventory


def _playbook(
    playbook: Path, inventory: Path, extra_vars: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    return run_playbook(playbook, str(inventory), extra_vars)


def _render(tmp_path: Path, template: str, variables: dict[str, object], nodes: int) -> Path:
    rendered = tmp_path / f"{nodes}-{template.removesuffix('.j2')}"
    result = _playbook(
        PLAYBOOKS / "render_template.yml",
        _inventory(tmp_path, nodes),
        {
            **FPM_SIZE,
            **variables,
            "educloud_policies_dir": str(repo_root() / "policies"),
            "educloud_role_under_test": "nextcloud",
            "educloud_template": template,
            "educloud_render_to": str(rendered),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return rendered


def _validate(tmp_path: Path, variables: dict[str, object], nodes: int):
    return _playbook(
        PLAYBOOKS / "role_validate.yml",
        _inventory(tmp_path, nodes),
        {**variables, "educloud_role_under_test": "nextcloud"},
    )


def _pool_admin_values(path: Path) -> dict[str, str]:
    """php_admin_value[...] of the pool as an INI parser reads them (PHP-FPM's format)."""
    if PHP is None:
        pytest.fail("the PHP CLI is missing: install php8.2-cli (./run.sh setup does)")
    code = (
        "$pool = parse_ini_file($argv[1], true, INI_SCANNER_RAW);"
        'echo json_encode($pool["nextcloud"]["php_admin_value"]);'
    )
    php = subprocess.run(
        [PHP, "-r", code, str(path)], capture_output=True, text=True, check=True, timeout=30
    )
    values: dict[str, str] = json.loads(php.stdout)
    return values


# --- Rendered configuration -------------------------------------------------------------


@pytest.fixture(scope="module")
def multinode_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("multinode")
    return php_config(_render(tmp_path, "educloud.config.php.j2", MULTINODE, nodes=2))


@pytest.fixture(scope="module")
def single_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("single")
    return php_config(_render(tmp_path, "educloud.config.php.j2", SECRETS, nodes=1))


def test_single_server_keeps_redis_on_its_socket_and_local_files(
    single_config: dict[str, Any],
) -> None:
    assert single_config["redis"]["host"] == "/run/redis/redis-server.sock"
    assert single_config["redis"]["port"] == 0
    assert "objectstore" not in single_config


def test_single_server_socket_follows_the_redis_roles(tmp_path: Path) -> None:
    variables = {**SECRETS, "redis_socket": "/run/redis/educloud.sock"}
    config = php_config(_render(tmp_path, "educloud.config.php.j2", variables, nodes=1))
    assert (config["redis"]["host"], config["redis"]["port"]) == ("/run/redis/educloud.sock", 0)


def test_nodes_share_the_remote_redis(multinode_config: dict[str, Any]) -> None:
    redis = multinode_config["redis"]
    assert (redis["host"], redis["port"]) == ("198.18.0.21", 6380)
    assert redis["password"] == SECRETS["nextcloud_redis_password"]
    assert multinode_config["memcache.locking"] == "\\OC\\Memcache\\Redis"
    assert multinode_config["memcache.distributed"] == "\\OC\\Memcache\\Redis"


@pytest.mark.charter("C1")
def test_objectstore_is_the_s3_bucket_with_tls(multinode_config: dict[str, Any]) -> None:
    objectstore = multinode_config["objectstore"]
    assert objectstore["class"] == "\\OC\\Files\\ObjectStore\\S3"
    assert objectstore["arguments"] == {
        "bucket": S3["bucket"],
        "hostname": S3["hostname"],
        "port": 443,
        "region": "gra",
        "use_ssl": True,
        "use_path_style": True,
        "autocreate": False,
        "key": S3["key"],
        "secret": S3["secret"],
    }


def test_single_server_keeps_sessions_in_files(tmp_path: Path) -> None:
    values = _pool_admin_values(_render(tmp_path, "php-fpm-pool.conf.j2", SECRETS, nodes=1))
    assert "session.save_handler" not in values


@pytest.mark.parametrize(
    ("variables", "nodes", "expected_url"),
    [
        (MULTINODE, 2, "tcp://198.18.0.21:6380"),
        # Two nodes sharing sessions even if Redis were given by socket (the default follows
        # the group's size).
        (SECRETS, 2, "unix:///run/redis/redis-server.sock"),
    ],
)
def test_sessions_go_to_redis_with_locking(
    tmp_path: Path, variables: dict[str, object], nodes: int, expected_url: str
) -> None:
    values = _pool_admin_values(_render(tmp_path, "php-fpm-pool.conf.j2", variables, nodes))
    assert values["session.save_handler"] == "redis"
    save_path = urlsplit(values["session.save_path"])
    assert f"{save_path.scheme}://{save_path.netloc}{save_path.path}" == expected_url
    query = parse_qs(save_path.query, keep_blank_values=True)
    assert query["auth"] == [SECRETS["nextcloud_redis_password"]]
    assert query["database"] == ["0"]
    assert values["redis.session.locking_enabled"] == "1"
    assert values["redis.session.lock_retries"] == "-1"


# --- Which node does what ---------------------------------------------------------------


ROLES_OF_NODES = """
- name: Record what each node does
  hosts: nextcloud
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Write the node's decisions
      ansible.builtin.copy:
        content: >-
          {{{{ {{'jobs': nextcloud_runs_background_jobs | bool,
                'installs': nextcloud_is_install_host | bool,
                'sessions': nextcloud_redis_sessions | bool,
                'packages': nextcloud_system_packages}} | to_json }}}}
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        mode: "0600"
"""


def _node_roles(tmp_path: Path, variables: dict[str, object], nodes: int) -> dict[str, Any]:
    playbook = tmp_path / "roles_of_nodes.yml"
    out = tmp_path / "out"
    out.mkdir()
    playbook.write_text(
        ROLES_OF_NODES.format(role=repo_root() / "roles" / "nextcloud", out=out), encoding="utf-8"
    )
    result = _playbook(playbook, _inventory(tmp_path, nodes), variables)
    assert result.returncode == 0, result.stdout + result.stderr
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}


def test_background_jobs_and_install_on_the_first_node_only(tmp_path: Path) -> None:
    roles = _node_roles(tmp_path, MULTINODE, nodes=3)
    assert {host: role["jobs"] for host, role in roles.items()} == {
        "localhost": True,
        "nc2": False,
        "nc3": False,
    }
    assert [host for host, role in roles.items() if role["installs"]] == ["localhost"]


def test_background_jobs_host_can_be_moved(tmp_path: Path) -> None:
    roles = _node_roles(tmp_path, {**MULTINODE, "nextcloud_background_jobs_host": "nc2"}, 2)
    assert [host for host, role in roles.items() if role["jobs"]] == ["nc2"]


def test_remote_redis_installs_no_redis_server(tmp_path: Path) -> None:
    roles = _node_roles(tmp_path, MULTINODE, nodes=2)
    for role in roles.values():
        assert "redis-server" not in role["packages"]
        assert role["sessions"] is True


def test_single_server_keeps_file_sessions_and_leaves_redis_to_the_redis_role(
    tmp_path: Path,
) -> None:
    roles = _node_roles(tmp_path, SECRETS, nodes=1)
    assert roles["localhost"]["jobs"] is True
    assert "redis-server" not in roles["localhost"]["packages"]
    assert roles["localhost"]["sessions"] is False


# --- Input checks -----------------------------------------------------------------------


def test_valid_multinode_inventory_passes(tmp_path: Path) -> None:
    result = _validate(tmp_path, MULTINODE, nodes=2)
    assert result.returncode == 0, result.stdout + result.stderr


def _s3(**changes: object) -> dict[str, object]:
    return {**MULTINODE, "nextcloud_objectstore_s3": {**S3, **changes}}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({**SECRETS}, "the nodes must share file locks"),
        ({**MULTINODE, "nextcloud_objectstore_s3": {}}, "each node's nextcloud_data_dir"),
        ({**MULTINODE, "nextcloud_redis_sessions": False}, "nextcloud_redis_sessions true"),
        ({**MULTINODE, "nextcloud_background_jobs_host": "nc9"}, "must be among them"),
        (_s3(use_ssl=False), "use_ssl: false is refused"),
        (_s3(hostname="https://s3.gra.io.cloud.ovh.net"), "without scheme, port or bucket"),
        (_s3(bucket="educloud_files"), "no underscore"),
        (_s3(secret=""), "key and secret"),
        (_s3(endpoint="https://x"), "and only"),
    ],
)
def test_bad_multinode_inventory_is_refused(
    tmp_path: Path, variables: dict[str, object], message: str
) -> None:
    result = _validate(tmp_path, variables, nodes=2)
    assert result.returncode != 0
    assert message in result.stdout


def test_plain_http_only_when_allowed(tmp_path: Path) -> None:
    variables = {**_s3(use_ssl=False, port=443), "nextcloud_objectstore_allow_plain_http": True}
    result = _validate(tmp_path, variables, nodes=2)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.charter("C1", "C5")
@pytest.mark.parametrize(
    ("variables", "why"),
    [
        ({**MULTINODE, "nextcloud_objectstore_egress_destinations": []}, "no destination"),
        (
            {
                **MULTINODE,
                "nextcloud_objectstore_egress_destinations": [{**OBJECT_STORAGE, "country": "DE"}],
            },
            "destination outside the allowed countries",
        ),
        (_s3(port=8443), "another port"),
        (_s3(hostname="203.0.113.7"), "an address outside the destination"),
        (
            {
                **MULTINODE,
                "nextcloud_objectstore_egress_destinations": [
                    {**OBJECT_STORAGE, "purpose": "backup_target"}
                ],
            },
            "another purpose",
        ),
    ],
)
def test_object_storage_outside_the_egress_policy_is_refused(
    tmp_path: Path, variables: dict[str, object], why: str
) -> None:
    result = _validate(tmp_path, variables, nodes=2)
    assert result.returncode != 0, why
    assert "must be an object_storage destination" in result.stdout, why


@pytest.mark.charter("C1", "C5")
def test_object_storage_at_an_approved_address_passes(tmp_path: Path) -> None:
    result = _validate(tmp_path, _s3(hostname="198.51.100.20"), nodes=2)
    assert result.returncode == 0, result.stdout + result.stderr
