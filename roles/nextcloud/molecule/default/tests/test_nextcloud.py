"""Nextcloud on a converged host: PHP-FPM, nginx vhost, its use of Redis, files, charter config
(testinfra).

Run by molecule on its temporary host and against an inventory (the lab's edu1). Nextcloud's
release archive cannot be downloaded on the build machines: without it the role prepares
everything and stops before the install step, and the checks of an installed Nextcloud skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from educloud.charter import nextcloud
from educloud.hostscope import policies, skip_unless_in_group

ROLE_DIR = Path(__file__).resolve().parents[3]
# Where the role writes the vhost (tasks/nginx.yml); nginx -T prints each file under this name.
VHOST_FILE = "/etc/nginx/educloud.d/nextcloud.conf"


@pytest.fixture(autouse=True)
def _only_nextcloud_hosts(host):
    skip_unless_in_group(host.ansible.get_variables(), "nextcloud")


def _render(host, name: str, value: Any) -> Any:
    """An inventory value as the play sees it: get_variables() leaves templates
    ("{{ vault_redis_password }}") unrendered. A role default that is a template (the Redis
    socket follows the redis role's redis_socket) is rendered over the inventory's variables."""
    if isinstance(value, str) and "{{" in value:
        if name in host.ansible.get_variables():
            return host.ansible("ansible.builtin.debug", f"var={name}", check=False)[name]
        return host.ansible("ansible.builtin.debug", f"msg={value}", check=False)["msg"]
    return value


@pytest.fixture
def nc(host) -> dict[str, Any]:
    """The role's variables on this host: the inventory's, else the role's defaults."""
    defaults = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text(encoding="utf-8"))
    variables = host.ansible.get_variables()
    names = [
        "nextcloud_php_version",
        "nextcloud_user",
        "nextcloud_install_dir",
        "nextcloud_data_dir",
        "nextcloud_log_file",
        "nextcloud_hostname",
        "nextcloud_listen_address",
        "nextcloud_listen_port",
        "nextcloud_redis_socket",
        "nextcloud_redis_host",
        "nextcloud_php_memory_limit",
        "nextcloud_php_opcache_memory_mb",
        "nextcloud_php_opcache_interned_strings_mb",
        "nextcloud_apps_allowed",
        "nextcloud_apps_denied",
        "nextcloud_apps_always_enabled",
    ]
    settings = {
        name.removeprefix("nextcloud_"): _render(host, name, variables.get(name, defaults[name]))
        for name in names
    }
    settings["php"] = f"php{settings['php_version']}"
    settings["config_dir"] = f"{settings['install_dir']}/config"
    return settings


@pytest.fixture
def retention(host: Any) -> dict[str, Any]:
    """The retention categories of the deployment's own policies."""
    return dict(policies(host.ansible.get_variables()).retention)


def _ini(phpinfo: str, directive: str) -> str:
    """The local value of a directive in `php -i` output ("name => local => master")."""
    match = re.search(rf"^{re.escape(directive)} => (.*?) => ", phpinfo, re.MULTILINE)
    assert match, f"{directive} is not in the PHP configuration"
    return match.group(1)


def _http(host, nc: dict[str, Any], path: str) -> tuple[int, dict[str, str], str]:
    """A request to the loopback vhost: status, headers (lower-case names), body."""
    url = f"http://{nc['listen_address']}:{nc['listen_port']}{path}"
    response = host.run("curl -sS --max-time 10 -D - -H %s %s", f"Host: {nc['hostname']}", url)
    assert response.rc == 0, response.stderr
    head, _, body = response.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _redis_cli(host, nc: dict[str, Any], *args: str):
    """redis-cli as the Nextcloud user, with the Redis password of Nextcloud's config.

    The password travels from that file into REDISCLI_AUTH inside the host's shell, so it
    is on no command line (ps shows those); its SHA-256 is printed first, for comparison
    with the inventory's.
    """
    read_password = (
        f"include {json.dumps(nc['config_dir'] + '/educloud.config.php')}; "
        'echo $CONFIG["redis"]["password"];'
    )
    redis_cli = shlex.join(
        ["runuser", "-u", nc["user"], "--", "redis-cli", "-s", nc["redis_socket"], *args]
    )
    return host.run(
        f'REDISCLI_AUTH="$({nc["php"]} -r {shlex.quote(read_password)})" '
        "&& export REDISCLI_AUTH "
        """&& printf '%s' "$REDISCLI_AUTH" | sha256sum """
        f"&& {redis_cli}"
    )


@pytest.fixture
def occ(host, nc: dict[str, Any]):
    """occ as the Nextcloud user. Skips only when the inventory gives no release archive and
    neither occ nor config.php is there; anything half there, or occ failing, fails."""
    occ_path = f"{nc['install_dir']}/occ"
    config = host.file(f"{nc['config_dir']}/config.php")

    def run(*args: str):
        result = host.run(
            shlex.join(["runuser", "-u", nc["user"], "--", nc["php"], occ_path, *args])
        )
        problem = nextcloud.occ_exit_problem(list(args), result.rc, result.stdout)
        assert problem is None, f"{problem}: {result.stderr}"
        return result

    status_exit, status = None, None
    if host.file(occ_path).exists and config.exists:
        answer = host.run(
            shlex.join(["runuser", "-u", nc["user"], "--", nc["php"], occ_path, "status",
                        "--output=json"])
        )  # fmt: skip
        status_exit = answer.rc
        with contextlib.suppress(ValueError):
            status = json.loads(answer.stdout)
    archive = host.ansible(
        "ansible.builtin.debug", f"msg={{{{ {nextcloud.ARCHIVE_EXPRESSION} }}}}", check=False
    )["msg"]
    installed, problem = nextcloud.installation_problem(
        archive_given=bool(str(archive or "").strip()),
        occ_present=host.file(occ_path).exists,
        config_present=config.exists,
        status_exit=status_exit,
        status=status if isinstance(status, dict) else None,
    )
    if problem:
        pytest.fail(problem)
    if not installed:
        pytest.skip(nextcloud.NOT_INSTALLED)
    return run


# --- PHP-FPM ----------------------------------------------------------------------------


def test_php_fpm_enabled_and_running(host, nc):
    service = host.service(f"{nc['php']}-fpm")
    assert service.is_enabled
    assert service.is_running


def test_fpm_socket_only_for_nginx(host, nc):
    socket = host.file(f"/run/php/{nc['php']}-fpm-nextcloud.sock")
    assert socket.is_socket
    assert socket.user == "www-data"
    assert socket.mode == 0o660


def test_fpm_workers_run_as_the_nextcloud_user(host, nc):
    listing = host.check_output(f"ps -C php-fpm{nc['php_version']} -o user:32=,args=")
    workers = [line.split()[0] for line in listing.splitlines() if "php-fpm: pool" in line]
    assert workers, "no PHP-FPM worker is running"
    assert set(workers) == {nc["user"]}


def test_debian_default_pool_is_removed(host, nc):
    assert not host.file(f"/etc/php/{nc['php_version']}/fpm/pool.d/www.conf").exists


def test_php_cli_has_apcu_and_the_memory_limit(host, nc):
    phpinfo = host.check_output(f"{nc['php']} -i")
    assert _ini(phpinfo, "apc.enable_cli") == "On"
    assert _ini(phpinfo, "memory_limit") == nc["php_memory_limit"]


def test_fpm_has_opcache_sized_for_nextcloud(host, nc):
    # php-fpm -i reports the FPM SAPI's own ini files (fpm/php.ini and fpm/conf.d).
    phpinfo = host.check_output(f"php-fpm{nc['php_version']} -i")
    assert _ini(phpinfo, "opcache.enable") == "On"
    assert _ini(phpinfo, "opcache.memory_consumption") == str(nc["php_opcache_memory_mb"])
    assert _ini(phpinfo, "opcache.interned_strings_buffer") == str(
        nc["php_opcache_interned_strings_mb"]
    )


# --- nginx ------------------------------------------------------------------------------


def test_nginx_configuration_is_valid(host):
    assert host.run("nginx -t").rc == 0


# /data/.ncdata: the marker file Nextcloud keeps in its data directory, served if that
# directory ever sat under the web root without the deny rule.
@pytest.mark.parametrize("path", ["/config/config.php", "/data/", "/data/.ncdata", "/occ"])
def test_internals_are_never_served(host, nc, path):
    status, _, body = _http(host, nc, path)
    assert status == 404
    assert "<?php" not in body
    assert "$CONFIG" not in body


def test_caldav_discovery_redirects_to_dav(host, nc):
    status, headers, _ = _http(host, nc, "/.well-known/caldav")
    assert status == 301
    assert urlsplit(headers["location"]).path == "/remote.php/dav/"


def test_mjs_is_served_as_javascript(host):
    configuration = host.check_output("nginx -T 2>/dev/null")
    _, marker, rest = configuration.partition(f"# configuration file {VHOST_FILE}:")
    assert marker, f"nginx does not read {VHOST_FILE}"
    vhost = rest.split("# configuration file ", 1)[0]
    assert re.search(r"types\s*\{[^}]*\btext/javascript\s+(?:[\w.+-]+\s+)*mjs\s*;", vhost)


def test_vhost_listens_on_loopback_only(host, nc):
    port = nc["listen_port"]
    listeners = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")]
    assert f"tcp://{nc['listen_address']}:{port}" in listeners
    for listener in listeners:
        address = listener.removeprefix("tcp://").removeprefix("tcp6://").rsplit(":", 1)[0]
        assert ipaddress.ip_address(address).is_loopback, listener


# --- Redis ------------------------------------------------------------------------------
# Redis itself (socket only, password, nothing on disk) is the redis role's, checked by its
# host checks (roles/redis/molecule/default/tests). Here: Nextcloud can use it.


@pytest.fixture
def local_redis(nc):
    """The redis role's local Redis on this host; a shared one (nextcloud_redis_host) is
    reached over TCP and the nextcloud user needs no socket."""
    if nc["redis_host"]:
        pytest.skip(f"Redis is shared, at {nc['redis_host']} (the redis role checks it)")


def test_nextcloud_user_is_in_the_redis_group(host, nc, local_redis):
    # The socket is 0770, group redis: membership is what lets PHP-FPM and occ in.
    assert "redis" in host.user(nc["user"]).groups


def _inventory_redis_password_sha256(host) -> str:
    # Only the digest leaves this frame: a failing assertion never prints the password.
    configured = host.ansible.get_variables()["nextcloud_redis_password"]
    password = str(_render(host, "nextcloud_redis_password", configured))
    return hashlib.sha256(password.encode()).hexdigest()


def test_nextcloud_reaches_redis_on_its_socket_with_the_inventory_password(host, nc, local_redis):
    expected = _inventory_redis_password_sha256(host)
    result = _redis_cli(host, nc, "ping")
    assert result.rc == 0, result.stderr
    digest, reply = result.stdout.split("\n", 1)
    assert digest.split()[0] == expected, "Nextcloud's config holds another Redis password"
    assert reply.strip() == "PONG"


# --- Files ------------------------------------------------------------------------------


def test_config_dir_belongs_to_nextcloud(host, nc):
    config_dir = host.file(nc["config_dir"])
    assert config_dir.is_directory
    assert config_dir.user == nc["user"]
    assert config_dir.mode == 0o750


@pytest.mark.parametrize("name", ["charter.config.php", "educloud.config.php"])
def test_generated_config_is_not_world_readable(host, nc, name):
    config = host.file(f"{nc['config_dir']}/{name}")
    assert config.user == nc["user"]
    assert config.mode == 0o640


def test_data_dir_is_private_to_nextcloud(host, nc):
    data_dir = host.file(nc["data_dir"])
    assert data_dir.is_directory
    assert data_dir.user == nc["user"]
    assert data_dir.mode == 0o750


def test_nextcloud_cannot_modify_its_code(host, nc):
    assert host.file(nc["install_dir"]).user == "root"
    probe = host.run("runuser -u %s -- test -w %s", nc["user"], nc["install_dir"])
    assert probe.rc != 0


def test_log_dir_exists(host, nc):
    assert host.file(str(Path(nc["log_file"]).parent)).is_directory


# --- Charter configuration (C2, C5, C7) -------------------------------------------------


@pytest.fixture
def charter_config(host, nc) -> dict[str, Any]:
    """config/charter.config.php as PHP reads it."""
    code = (
        f"include {json.dumps(nc['config_dir'] + '/charter.config.php')}; "
        "echo json_encode($CONFIG);"
    )
    return json.loads(host.check_output("%s -r %s", nc["php"], code))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("appstoreenabled", False),
        ("has_internet_connection", False),
        ("updatechecker", False),
        ("lookup_server", ""),
        ("connectivity_check_domains", []),
    ],
)
def test_charter_cuts_nextcloud_off_from_the_vendor(charter_config, key, value):
    assert charter_config[key] == value


def test_charter_expires_trash_versions_and_activity(charter_config, retention):
    trash = retention["deleted_files"]["retention_days"]
    versions = retention["file_versions"]["retention_days"]
    assert charter_config["trashbin_retention_obligation"] == f"auto, {trash}"
    assert charter_config["versions_retention_obligation"] == f"auto, {versions}"
    assert charter_config["activity_expire_days"] == retention["activity"]["retention_days"]


# --- Log rotation (C7) ------------------------------------------------------------------


def test_log_kept_for_the_system_logs_period(host, retention):
    rotation = host.file("/etc/logrotate.d/nextcloud").content_string
    maxage = re.search(r"^\s*maxage\s+(\d+)\s*$", rotation, re.MULTILINE)
    assert maxage, "no maxage in /etc/logrotate.d/nextcloud"
    assert int(maxage.group(1)) == retention["system_logs"]["retention_days"]


def test_logrotate_accepts_the_configuration(host):
    assert host.run("logrotate --debug /etc/logrotate.d/nextcloud").rc == 0


# --- Background jobs --------------------------------------------------------------------


def _background_jobs_host(host) -> str:
    variables = host.ansible.get_variables()
    configured = variables.get("nextcloud_background_jobs_host")
    if configured:
        return str(_render(host, "nextcloud_background_jobs_host", configured))
    # The role's default: the first host of group nextcloud, else the host itself (testinfra
    # lists a group's hosts sorted: name the host in the inventory if that order differs).
    members = variables.get("groups", {}).get("nextcloud") or [variables["inventory_hostname"]]
    return str(members[0])


def test_cron_timer_runs_on_the_background_jobs_host_only(host):
    # cron.php runs on one node: twice at once against the same instance would clash.
    timer = host.service("nextcloud-cron.timer")
    runs_jobs = host.ansible.get_variables()["inventory_hostname"] == _background_jobs_host(host)
    assert timer.is_enabled == runs_jobs
    assert timer.is_running == runs_jobs


def test_cron_service_runs_as_nextcloud(host, nc):
    assert host.check_output("systemctl show -P User nextcloud-cron.service") == nc["user"]


def test_cron_service_waits_for_the_install(host, nc):
    # systemctl show prints conditions as "[unprintable]": read the unit as systemd loads it.
    unit = host.check_output("systemctl cat nextcloud-cron.service")
    conditions = re.findall(r"^ConditionPathExists=(.*)$", unit, re.MULTILINE)
    assert conditions and conditions[-1] == f"{nc['config_dir']}/config.php"


# --- Installed Nextcloud ----------------------------------------------------------------


def test_occ_reports_installed(occ):
    status = json.loads(occ("status", "--output=json").stdout)
    assert status["installed"] is True


@pytest.fixture
def enabled_apps(occ) -> set[str]:
    return set(json.loads(occ("app:list", "--output=json").stdout)["enabled"])


def test_no_denied_app_is_enabled(nc, enabled_apps):
    denied = set(nc["apps_denied"]) - set(nc["apps_always_enabled"])
    assert sorted(denied & enabled_apps) == []


def test_every_allowed_app_is_enabled(nc, enabled_apps):
    assert sorted(set(nc["apps_allowed"]) - enabled_apps) == []


# Every key of the charter file, read from the role's template at collection time.
CHARTER_KEYS = re.findall(
    r"^  '([^']+)' =>",
    (Path(__file__).parents[3] / "templates" / "charter.config.php.j2").read_text(encoding="utf-8"),
    flags=re.MULTILINE,
)


@pytest.mark.parametrize("key", CHARTER_KEYS)
def test_occ_sees_the_charter_value(occ, charter_config, key):
    # What Nextcloud runs with (config.php merged with charter.config.php, environment
    # included), not only what the file says.
    seen = json.loads(occ("config:system:get", key, "--output=json").stdout or "null")
    assert seen == charter_config[key]


def test_setup_checks_report_no_error(occ):
    # Exit code 1 means warnings too: read the severities from the JSON.
    checks = json.loads(occ("setupchecks", "--output=json").stdout)
    errors = [
        f"{category}/{name}: {result.get('description', '')}"
        for category, results in checks.items()
        for name, result in results.items()
        if result.get("severity") == "error"
    ]
    assert errors == []
