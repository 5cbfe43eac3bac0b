"""The role variables the policies decide are computed once (educloud.policy.role_variables):
ansible/group_vars/all/policies.yml sets each through the filter plugin, real Ansible
templates them the same, and the charter names them as the controls they are."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud import policy
from educloud.errors import EducloudError
from educloud.paths import ansible_dir, repo_root

POLICIES_YML = ansible_dir() / "group_vars" / "all" / "policies.yml"
ROLES = ("common", "keycloak", "nextcloud", "reporting", "retention", "backup", "reverse_proxy")


def _values() -> dict[str, Any]:
    return policy.policy_role_variables(policy.load())


def _role_of(variable: str) -> str:
    return next(r for r in sorted(ROLES, key=len, reverse=True) if variable.startswith(r + "_"))


def test_backup_horizons_are_the_policys_counts_in_days() -> None:
    keep = policy.load().retention["backups"]["keep"]
    values = _values()
    assert values["backup_keep_daily_days"] == keep["daily"]
    assert values["backup_keep_weekly_days"] == keep["weekly"] * 7
    assert values["backup_keep_monthly_days"] == keep["monthly"] * 30


def test_a_period_follows_the_policy() -> None:
    loaded = policy.load()
    retention = json.loads(json.dumps(loaded.raw["retention"]))
    retention["categories"]["system_logs"]["retention_days"] = 60
    values = policy.role_variables(retention, loaded.raw["hosting"])
    assert values["common_journald_max_retention"] == "60day"
    assert values["nextcloud_log_retention_days"] == 60


def test_a_missing_category_is_named() -> None:
    loaded = policy.load()
    retention = json.loads(json.dumps(loaded.raw["retention"]))
    del retention["categories"]["offline_sessions"]
    with pytest.raises(EducloudError, match=r"categories\.offline_sessions is missing"):
        policy.role_variables(retention, loaded.raw["hosting"])


def test_every_value_is_a_documented_role_variable() -> None:
    for variable in _values():
        role = _role_of(variable)
        defaults = yaml.safe_load(
            (repo_root() / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")
        )
        assert variable in defaults, f"{variable}: not in roles/{role}/defaults/main.yml"


def test_policies_yml_takes_each_value_from_the_one_computation() -> None:
    text = POLICIES_YML.read_text(encoding="utf-8")
    for variable in _values():
        line = f'{variable}: "{{{{ educloud_role_values.{variable} }}}}"'
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"policies.yml: {variable}"
    # No other arithmetic on the retention policy there.
    assert "* 7" not in text and "* 30" not in text


def test_charter_names_each_retention_variable_as_a_control_of_c7() -> None:
    controls = {v for c in policy.load().guarantee("C7").controls for v in c.variables}
    retention_derived = {
        v
        for v in _values()
        if "hosting" not in v
        and not v.startswith("reverse_proxy_")
        and v != "reporting_retention_days"
    }
    assert retention_derived <= controls, sorted(retention_derived - controls)


def test_ansible_templates_the_same_values(tmp_path: Path) -> None:
    """Real ansible-playbook, the real policies.yml and filter plugin."""
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(POLICIES_YML)],
                    "tasks": [
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ educloud_role_values | to_json }}",
                                "dest": str(tmp_path / "values.json"),
                                "mode": "0600",
                            }
                        }
                    ],
                }
            ]
        )
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"educloud_policies_dir": str(repo_root() / "policies")}),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "ANSIBLE_FILTER_PLUGINS": str(ansible_dir() / "filter_plugins"),
            # The filter plugin imports educloud: this checkout's, not whichever is installed.
            "PYTHONPATH": str(repo_root() / "python_tools"),
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "HOME": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    templated = json.loads((tmp_path / "values.json").read_text(encoding="utf-8"))
    assert templated == json.loads(json.dumps(_values()))


def test_fingerprint_names_each_file_that_differs(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    shutil.copytree(repo_root() / "policies", mine)
    deployed = policy.fingerprint(mine)
    assert set(deployed) >= {"charter.yml", "retention.yml", "egress.yml", "hosting.yml"}
    assert policy.fingerprint_differences(policy.fingerprint(mine), deployed) == []
    (mine / "retention.yml").write_text(
        (mine / "retention.yml")
        .read_text(encoding="utf-8")
        .replace("retention_days: 30", "retention_days: 31", 1),
        encoding="utf-8",
    )
    (mine / "extra.yml").write_text("x: 1\n", encoding="utf-8")
    (mine / "egress.yml").unlink()
    assert policy.fingerprint_differences(policy.fingerprint(mine), deployed) == [
        "egress.yml (deployed, absent here)",
        "extra.yml (not deployed)",
        "retention.yml (differs)",
    ]


def test_the_filter_fingerprints_as_the_library_does(tmp_path: Path) -> None:
    sys.path.insert(0, str(ansible_dir() / "filter_plugins"))
    try:
        import educloud_policy  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    directory = repo_root() / "policies"
    assert educloud_policy.educloud_policy_fingerprint(str(directory)) == policy.fingerprint(
        directory
    )
