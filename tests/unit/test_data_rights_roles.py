"""The three roles of the group data_rights (reporting, educloud_tool, retention; issue #23,
docs/decisions/0016-data-rights-split.md): their input checks run through the real
ansible-playbook on this machine, their settings files rendered with their defaults, and
the playbook's order. Nothing is deployed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.unit.role_validation import render_role_template, validate_role

from educloud import policy
from educloud.paths import ansible_dir, repo_root

TOKEN = "moderation-token-0123456789abcdefghij"  # noqa: S105 (a test value)
REPORTING = {
    "reporting_db_password": "reports-db-0123456789",
    "reporting_form_secret": "form-secret-0123456789abcdefghijklmn",
    "reporting_moderation_token": TOKEN,
    "reporting_smtp_host": "198.18.0.1",
    "reporting_smtp_port": 2525,
    "reporting_smtp_sender": "signalement@educloud.test",
    "reporting_moderators": ["moderation@educloud.test"],
}
RETENTION = {
    "retention_keycloak_url": "https://auth-admin.educloud.test",
    "retention_keycloak_realm": "lab",
    "retention_keycloak_client_secret": "data-rights-secret-0123",
    "retention_reports_token": TOKEN,
}
ROLES = ("reporting", "educloud_tool", "retention")
# The policies the templates are rendered with (ansible/group_vars/all/policies.yml).
POLICIES = {"educloud_policies_dir": str(repo_root() / "policies")}


def _said(result: object) -> str:
    return " ".join(str(getattr(result, "stdout", "")).split())


@pytest.fixture
def tool_venv(tmp_path: Path) -> str:
    """A virtual environment where the educloud_tool role would have put the tool."""
    tool = tmp_path / "venv" / "bin" / "educloud"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n", encoding="utf-8")
    return str(tmp_path / "venv")


# --- reporting ------------------------------------------------------------------------------


def test_reporting_passes_a_complete_inventory() -> None:
    result = validate_role("reporting", REPORTING)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"reporting_moderation_token": "short"}, "reporting_moderation_token (32+ characters"),
        ({"reporting_moderators": []}, "reporting_moderators (plain e-mail addresses)"),
        ({"reporting_public_base_path": "signalement"}, "reporting_public_base_path must be"),
        (
            {"reporting_rate_limit_global_per_hour": 20},
            "reporting_rate_limit_global_per_hour at least 10 times",
        ),
    ],
)
def test_reporting_refuses_what_the_service_cannot_use(
    extra: dict[str, object], message: str
) -> None:
    result = validate_role("reporting", {**REPORTING, **extra})
    assert result.returncode != 0
    assert message in _said(result)


def test_reporting_keeps_its_secrets_out_of_the_output() -> None:
    result = validate_role("reporting", {**REPORTING, "reporting_db_password": "short-secret"})
    assert result.returncode != 0
    assert "short-secret" not in result.stdout + result.stderr


def test_reporting_templates_say_they_are_managed_and_hold_no_token(tmp_path: Path) -> None:
    for template in ("reports.yml.j2", "educloud-reports.service.j2"):
        rendered = tmp_path / template.removesuffix(".j2")
        result = render_role_template("reporting", template, rendered, REPORTING | POLICIES)
        assert result.returncode == 0, result.stdout + result.stderr
        text = rendered.read_text(encoding="utf-8")
        assert text.startswith("#\n# Ansible managed\n#\n# Reads: reporting_"), template
        assert TOKEN not in text
    settings = yaml.safe_load((tmp_path / "reports.yml").read_text(encoding="utf-8"))
    # From the policy (ansible/group_vars/all/policies.yml), illicit_content_reports.
    period = policy.load().retention["illicit_content_reports"]["retention_days"]
    assert settings["retention_days"] == period
    secret_file = "/etc/educloud/reports-secrets/db-password"  # noqa: S105 (a path)
    assert settings["database"]["password_file"] == secret_file


# --- educloud_tool --------------------------------------------------------------------------


def test_educloud_tool_passes_its_defaults() -> None:
    result = validate_role("educloud_tool", {})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        {"educloud_tool_wheelhouse": "/opt/educloud/venv"},
        {"educloud_tool_wheelhouse": "/opt/educloud"},
        {"educloud_tool_venv": "/opt/educloud/wheelhouse/venv"},
        {"educloud_tool_venv": "venv"},
    ],
)
def test_educloud_tool_refuses_a_wheelhouse_that_would_remove_the_venv(
    extra: dict[str, object],
) -> None:
    result = validate_role("educloud_tool", extra)
    assert result.returncode != 0
    assert "neither inside the other" in _said(result)


def test_educloud_tool_refuses_a_source_without_the_package(tmp_path: Path) -> None:
    result = validate_role("educloud_tool", {"educloud_tool_source_dir": str(tmp_path)})
    assert result.returncode != 0
    assert "with its pyproject.toml" in _said(result)


# --- retention ------------------------------------------------------------------------------


def test_retention_passes_a_complete_inventory(tool_venv: str) -> None:
    result = validate_role("retention", {**RETENTION, "retention_tool_venv": tool_venv})
    assert result.returncode == 0, result.stdout + result.stderr


def test_retention_refuses_to_run_a_tool_that_is_not_installed(tmp_path: Path) -> None:
    result = validate_role("retention", {**RETENTION, "retention_tool_venv": str(tmp_path)})
    assert result.returncode != 0
    assert "Apply the educloud_tool role before this one" in _said(result)


def test_retention_needs_the_moderation_token_only_to_archive_reports(tool_venv: str) -> None:
    without = {**RETENTION, "retention_tool_venv": tool_venv, "retention_reports_token": ""}
    refused = validate_role("retention", without)
    assert refused.returncode != 0
    assert "retention_reports_token its token" in _said(refused)
    allowed = validate_role("retention", {**without, "retention_reports_enabled": False})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_retention_settings_reach_the_report_service_at_its_url(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9091/moderation/api"
    rendered = tmp_path / "retention.yml"
    variables = {**RETENTION, **POLICIES, "retention_reports_url": url}
    result = render_role_template("retention", "retention.yml.j2", rendered, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    text = rendered.read_text(encoding="utf-8")
    assert text.startswith("#\n# Ansible managed\n#\n# Reads: retention_")
    assert TOKEN not in text
    settings = yaml.safe_load(text)
    assert settings["reports"] == {
        "url": url,
        "token_file": "/etc/educloud/data-rights-secrets/moderation-token",
    }
    off = tmp_path / "off.yml"
    variables = {**variables, "retention_reports_enabled": False}
    result = render_role_template("retention", "retention.yml.j2", off, variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reports" not in yaml.safe_load(off.read_text(encoding="utf-8"))


# --- the split ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "former", "now"),
    [
        ("reporting", "data_rights_reports_smtp_host", "reporting_smtp_host"),
        ("educloud_tool", "data_rights_tool_venv", "educloud_tool_venv"),
        ("retention", "data_rights_retention_on_calendar", "retention_on_calendar"),
    ],
)
def test_a_former_data_rights_variable_is_refused_with_its_new_name(
    role: str, former: str, now: str, tool_venv: str
) -> None:
    """An inventory written for the data_rights role would otherwise lose that setting
    without a word."""
    variables = {**REPORTING, **RETENTION, "retention_tool_venv": tool_venv, former: "x"}
    result = validate_role(role, variables)
    assert result.returncode != 0
    assert f"{former} -> {now}" in _said(result)


@pytest.mark.parametrize("role", ROLES)
def test_each_former_name_leads_to_a_variable_of_its_role(role: str) -> None:
    role_dir = repo_root() / "roles" / role
    former = yaml.safe_load((role_dir / "vars" / "main.yml").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text(encoding="utf-8"))
    renames = former[f"{role}_former_names"]
    assert renames and all(name.startswith("data_rights_") for name in renames)
    assert {new.split()[0] for new in renames.values()} <= set(defaults)


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_the_roles_and_typed(role: str) -> None:
    role_dir = repo_root() / "roles" / role
    defaults = yaml.safe_load((role_dir / "defaults" / "main.yml").read_text(encoding="utf-8"))
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    assert all(name.startswith(f"{role}_") for name in defaults)
    assert set(specs["argument_specs"]["main"]["options"]) == set(defaults)


def test_site_applies_the_three_roles_in_order_on_the_group_data_rights() -> None:
    plays = yaml.safe_load((ansible_dir() / "site.yml").read_text(encoding="utf-8"))
    roles = {
        play["hosts"]: [r["role"] for r in play.get("roles", [])]
        for play in plays
        if play.get("roles")
    }
    assert roles["data_rights"] == ["reporting", "educloud_tool", "retention"]
