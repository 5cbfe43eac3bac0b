"""The nextcloud role's charter configuration and input checks, without a server.

charter.config.php is rendered by Ansible with the role's defaults and the policy wiring of
ansible/site.yml, then read by the real PHP CLI (Debian's php8.2-cli), as Nextcloud reads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.php_support import php_config
from tests.unit.role_validation import SINGLE_SERVER, render_role_template, validate_role

from educloud.charter.nextcloud import VENDOR_APPS
from educloud.paths import repo_root

ROLE_DEFAULTS = repo_root() / "roles" / "nextcloud" / "defaults" / "main.yml"
RETENTION = repo_root() / "policies" / "retention.yml"

VALID = {
    "nextcloud_hostname": "cloud.academie.test",
    "nextcloud_db_password": "db-password-0123",
    "nextcloud_admin_password": "admin-password-0123",
    "nextcloud_redis_password": "redis-password-0123456",
}


def _charter_config(tmp_path: Path, policies_dir: Path | None = None) -> dict[str, Any]:
    rendered = tmp_path / "charter.config.php"
    variables: dict[str, object] = {
        **VALID,
        "educloud_policies_dir": str(policies_dir or repo_root() / "policies"),
    }
    result = render_role_template("nextcloud", "charter.config.php.j2", rendered, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    return php_config(rendered)


def _retention_days(category: str, retention_file: Path = RETENTION) -> int:
    policy = yaml.safe_load(retention_file.read_text(encoding="utf-8"))
    return int(policy["categories"][category]["retention_days"])


@pytest.fixture(scope="module")
def charter_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _charter_config(tmp_path_factory.mktemp("charter"))


@pytest.mark.charter("C2", "C5")
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("appstoreenabled", False),
        ("updatechecker", False),
        ("upgrade.disable-web", True),
        ("has_internet_connection", False),
        ("connectivity_check_domains", []),
        ("lookup_server", ""),
        ("gs.enabled", False),
        ("reference_opengraph", False),
    ],
)
def test_closed_network_keys(charter_config: dict[str, Any], key: str, expected: object) -> None:
    assert key in charter_config, f"{key} missing from charter.config.php"
    assert charter_config[key] == expected


@pytest.mark.charter("C3", "C13")
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("knowledgebaseenabled", False),
        ("simpleSignUpLink.shown", False),
        ("skeletondirectory", ""),
        ("templatedirectory", ""),
        ("default_language", "fr"),
    ],
)
def test_no_vendor_content_keys(charter_config: dict[str, Any], key: str, expected: object) -> None:
    assert charter_config.get(key, "(missing)") == expected


@pytest.mark.charter("C7")
def test_retention_keys_follow_the_policy(charter_config: dict[str, Any]) -> None:
    deleted = _retention_days("deleted_files")
    versions = _retention_days("file_versions")
    assert charter_config["trashbin_retention_obligation"] == f"auto, {deleted}"
    assert charter_config["versions_retention_obligation"] == f"auto, {versions}"
    assert charter_config["activity_expire_days"] == _retention_days("activity")
    assert charter_config["log_rotate_size"] == 0, "logrotate, not Nextcloud, must rotate"


@pytest.mark.charter("C7")
def test_a_changed_policy_changes_the_configuration(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(repo_root() / "policies", policies)
    retention = yaml.safe_load((policies / "retention.yml").read_text(encoding="utf-8"))
    retention["categories"]["deleted_files"]["retention_days"] = 12
    (policies / "retention.yml").write_text(yaml.safe_dump(retention), encoding="utf-8")
    config = _charter_config(tmp_path, policies)
    assert config["trashbin_retention_obligation"] == "auto, 12"


@pytest.mark.charter("C2", "C5")
def test_no_denied_app_in_the_default_allow_list() -> None:
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text(encoding="utf-8"))
    allowed, denied = (
        set(defaults["nextcloud_apps_allowed"]),
        set(defaults["nextcloud_apps_denied"]),
    )
    assert not allowed & denied, f"denied apps in the allow list: {sorted(allowed & denied)}"
    for vendor_app in sorted(VENDOR_APPS):
        assert vendor_app in denied, f"{vendor_app} contacts the vendor and must be denied"


def test_valid_inventory_passes() -> None:
    result = validate_role("nextcloud", VALID, SINGLE_SERVER)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.charter("C2", "C5")
def test_denied_app_in_the_allow_list_is_refused() -> None:
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text(encoding="utf-8"))
    allowed = [*defaults["nextcloud_apps_allowed"], "survey_client"]
    result = validate_role("nextcloud", {**VALID, "nextcloud_apps_allowed": allowed}, SINGLE_SERVER)
    assert result.returncode != 0
    assert "nextcloud_apps_allowed names denied apps: survey_client" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"nextcloud_archive_url": "https://mirror.test/nextcloud-34.0.4.tar.bz2"}, "SHA-256"),
        (
            {"nextcloud_app_archives": [{"name": "user_oidc", "url": "https://mirror.test/u.tgz"}]},
            "needs a name (app id),",
        ),
        ({"nextcloud_redis_password": "short"}, "from Ansible Vault"),
        ({"nextcloud_hostname": "https://cloud.academie.test"}, "must be a DNS name"),
        (
            {"nextcloud_static_hosts": {"auth.academie.test": "127.0.0.1"}},
            "needs nextcloud_allow_local_remote_servers: true",
        ),
        (
            {
                "nextcloud_oidc_discovery_url": "https://auth.academie.test/realms/a/.well-known/openid-configuration",
                "nextcloud_oidc_client_secret": "client-secret-0123456",
                "nextcloud_apps_allowed": ["files"],
            },
            "needs user_oidc in nextcloud_apps_allowed",
        ),
    ],
)
def test_bad_inventory_is_refused(extra: dict[str, object], message: str) -> None:
    result = validate_role("nextcloud", {**VALID, **extra}, SINGLE_SERVER)
    assert result.returncode != 0
    assert message in result.stdout


# --- Redis is the redis role's ------------------------------------------------------------


def _inventory(tmp_path: Path, redis_group: dict[str, object] | None) -> Path:
    """localhost in the group nextcloud and, unless None, in the group redis with these vars."""
    groups: dict[str, object] = {"nextcloud": {"hosts": {"localhost": {}}}}
    if redis_group is not None:
        groups["redis"] = {"hosts": {"localhost": {}}, "vars": redis_group}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": groups}}), encoding="utf-8")
    return inventory


@pytest.mark.parametrize(
    ("redis_group", "found"),
    [
        (None, "localhost not in the group redis, redis_mode replicated"),
        ({}, "localhost in the group redis, redis_mode replicated"),
        ({"redis_mode": "replicated"}, "in the group redis, redis_mode replicated"),
        (
            {"redis_mode": "local", "redis_socket": "/run/redis/other.sock"},
            "redis_mode local, redis_socket /run/redis/other.sock",
        ),
    ],
)
def test_a_host_without_its_own_redis_is_refused(
    tmp_path: Path, redis_group: dict[str, object] | None, found: str
) -> None:
    # Nextcloud's socket given, so that another redis_socket is a mismatch.
    variables = {**VALID, "nextcloud_redis_socket": "/run/redis/redis-server.sock"}
    result = validate_role("nextcloud", variables, _inventory(tmp_path, redis_group))
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert "Nextcloud uses a Redis on this host's unix socket" in output
    assert "put localhost in the inventory group redis with redis_mode: local" in output
    assert found in output


def test_the_socket_follows_the_redis_roles(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, {"redis_mode": "local", "redis_socket": "/run/redis/r.sock"})
    result = validate_role("nextcloud", VALID, inventory)
    assert result.returncode == 0, result.stdout + result.stderr


def test_another_password_than_the_local_redis_is_refused(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, {"redis_mode": "local", "redis_password": "x" * 20})
    result = validate_role("nextcloud", VALID, inventory)
    assert result.returncode != 0
    assert "Require nextcloud_redis_password to be the local Redis's redis_password" in (
        result.stdout
    )
    assert "x" * 20 not in result.stdout + result.stderr


def test_the_same_password_as_the_local_redis_passes(tmp_path: Path) -> None:
    redis_group = {"redis_mode": "local", "redis_password": VALID["nextcloud_redis_password"]}
    result = validate_role("nextcloud", VALID, _inventory(tmp_path, redis_group))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_shared_redis_needs_no_redis_of_its_own(tmp_path: Path) -> None:
    variables = {**VALID, "nextcloud_redis_host": "198.18.0.21"}
    result = validate_role("nextcloud", variables, _inventory(tmp_path, None))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_role_writes_no_redis_configuration() -> None:
    role = repo_root() / "roles" / "nextcloud"
    assert not list((role / "templates").glob("redis*")), "Redis's files are the redis role's"
    tasks = "\n".join(path.read_text(encoding="utf-8") for path in (role / "tasks").glob("*.yml"))
    handlers = (role / "handlers" / "main.yml").read_text(encoding="utf-8")
    assert "/etc/redis" not in tasks
    assert "redis-server" not in tasks + handlers
