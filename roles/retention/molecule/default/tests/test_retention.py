"""Behaviour of the retention role on a converged host (testinfra; charter C7): the daily
timer running `educloud retention apply` with the host's copy of the policies.

Run by molecule on its temporary host and against an inventory (tests/run-all.sh: the lab's
edu1); conftest.py keeps them to the hosts of the group data_rights.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Setting = Callable[[str, Any], Any]
CONFIG = "/etc/educloud/retention.yml"
SECRETS = "/etc/educloud/data-rights-secrets"


def test_retention_timer_enabled_and_waiting(host):
    timer = host.service("educloud-retention.timer")
    assert timer.is_enabled
    assert timer.is_running  # "active (waiting)"


def test_retention_units_verify(host):
    result = host.run(
        "systemd-analyze verify /etc/systemd/system/educloud-retention.timer "
        "/etc/systemd/system/educloud-retention.service"
    )
    assert result.rc == 0, result.stderr


def test_retention_timer_is_daily_and_persistent(host, setting: Setting):
    timer = host.file("/etc/systemd/system/educloud-retention.timer").content_string
    calendar = setting("retention_on_calendar", "daily")
    assert f"OnCalendar={calendar}" in timer
    assert "Persistent=true" in timer
    assert "RandomizedDelaySec=" in timer


def test_retention_service_applies_the_config(host, setting: Setting):
    venv = setting("retention_tool_venv", "/opt/educloud/venv")
    unit = host.file("/etc/systemd/system/educloud-retention.service").content_string
    assert f"ExecStart={venv}/bin/educloud retention apply --config {CONFIG}" in unit
    assert "Type=oneshot" in unit


def _run_user(setting: Setting) -> str:
    """The account the retention run executes as: Nextcloud's when Nextcloud is in it (occ
    runs as the owner of config.php), else the retention account."""
    if setting("retention_nextcloud_url", ""):
        return str(setting("retention_nextcloud_system_user", "nextcloud"))
    return str(setting("retention_user", "educloud-data-rights"))


def test_retention_runs_as_the_account_that_owns_its_journal(host, setting: Setting):
    user = _run_user(setting)
    unit = host.file("/etc/systemd/system/educloud-retention.service").content_string
    assert f"User={user}\n" in unit
    assert "NoNewPrivileges=yes" in unit
    journal = setting("retention_journal", "/var/lib/educloud/retention/journal.jsonl")
    assert host.file(str(Path(journal).parent)).user == user


def test_retention_config_keeps_secrets_in_files(host, setting: Setting):
    user = _run_user(setting)
    directory = setting("retention_secrets_dir", SECRETS)
    config = host.file(CONFIG)
    assert config.mode == 0o640
    secret = host.file(f"{directory}/keycloak-client-secret")
    assert (secret.user, secret.mode) == (user, 0o600)
    client_secret = str(setting("retention_keycloak_client_secret", ""))
    assert client_secret, "retention_keycloak_client_secret is not set"
    assert client_secret not in config.content_string


def test_retention_reaches_the_moderation_api_with_its_token(host, setting: Setting):
    """The run archives expired reports (C9) through the report service's API, with its own
    copy of the token: the URL and the copy the retention role wrote are the reporting
    role's (the plan's read, GET purge, answers 200)."""
    if not setting("retention_reports_enabled", True):
        pytest.skip("retention_reports_enabled is off: the run leaves reports out")
    with host.sudo():
        reports = (yaml.safe_load(host.file(CONFIG).content_string) or {}).get("reports")
        assert reports, f"{CONFIG} has no reports section"
        token = host.file(reports["token_file"])
        assert (token.user, token.mode) == (_run_user(setting), 0o600)
        url = f"{reports['url']}/purge?before=2000-01-01"
        code = host.check_output(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 15 "
            f'-H "Authorization: Bearer $(cat {shlex.quote(reports["token_file"])})" '
            f"{shlex.quote(url)}"
        )
    assert code == "200", f"GET {url} with the retention run's token: {code}"


def test_policies_copied_for_the_retention_run(host, setting: Setting):
    policies = setting("retention_policies_dir", "/etc/educloud/policies")
    assert host.file(f"{policies}/retention.yml").contains("illicit_content_reports")
