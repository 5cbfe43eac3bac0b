"""`educloud verify` says "interrompu" when its checks did not run to their end, and exits
with a code of its own; it never turns an incomplete run into verdicts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from educloud.charter import verify as verify_mod
from educloud.cli import main as cli
from educloud.deployment import model as deployment_mod
from educloud.deployment.inventory import InventoryHost
from educloud.errors import EducloudError

JUNIT_OK = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="2">
<testcase classname="tests.charter.test_telemetry" name="test_no_telemetry_package[edu1]">
<properties><property name="check" value="test_telemetry.py::test_no_telemetry_package"/>
<property name="charter" value="C2"/><property name="host" value="edu1"/></properties>
</testcase>
{extra}
</testsuite></testsuites>
"""
COLLECTION_ERROR = (
    '<testcase classname="tests.charter.test_x" name="tests.charter.test_x">'
    '<error message="collection failure">ImportError</error></testcase>'
)


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """verify() on a one-host inventory, with pytest replaced by what `state` says."""
    state: dict[str, Any] = {
        "returncode": 0,
        "junit": JUNIT_OK.format(extra=""),
        "policy_problems": [],
    }
    host = InventoryHost("edu1", ("keycloak",), {"ansible_host": "198.18.0.11"})
    monkeypatch.setattr(
        deployment_mod,
        "load",
        lambda inventory: deployment_mod.Deployment(inventory, (host,), (), "", "", (), "/c"),
    )

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        junit = Path(next(a for a in argv if a.startswith("--junit-xml=")).split("=", 1)[1])
        if state["junit"] is not None:
            junit.write_text(state["junit"], encoding="utf-8")
        return subprocess.CompletedProcess(argv, state["returncode"], "", "")

    monkeypatch.setattr(verify_mod.subprocess, "run", run)
    monkeypatch.setattr(
        verify_mod, "deployed_policy_problems", lambda dep, directory: state["policy_problems"]
    )
    monkeypatch.setattr(
        verify_mod.inventory_vars, "write_cache", lambda inventory, path: path.write_text("{}")
    )
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    state["inventory"] = inventory
    state["output"] = tmp_path / "out"
    return state


def _verify(state: dict[str, Any]) -> verify_mod.Verification:
    return verify_mod.verify(state["inventory"], state["output"])


def test_a_complete_run_gives_verdicts(fake_run: dict[str, Any]) -> None:
    result = _verify(fake_run)
    assert result.interrupted == []
    assert {e.id: e.status for e in result.report}["C2"] == "partial"
    report = json.loads((fake_run["output"] / "charter-report.json").read_text())
    assert report["meta"]["complete"] is True
    junit = (fake_run["output"] / "charter-junit.xml").read_text()
    assert '<property name="educloud.C2" value="partial"' in junit


@pytest.mark.parametrize(
    ("returncode", "junit", "said"),
    [
        (2, JUNIT_OK.format(extra=COLLECTION_ERROR), "collection failure"),
        (3, JUNIT_OK.format(extra=""), "erreur interne"),
        (1, JUNIT_OK.format(extra=COLLECTION_ERROR), "hors de toute garantie"),
        (2, None, "aucun rapport JUnit"),
        (5, JUNIT_OK.format(extra=""), "aucun contrôle collecté"),
    ],
    ids=["collection-error", "internal-error", "unowned-failure", "no-junit", "nothing-collected"],
)
def test_an_incomplete_run_is_interrupted(
    fake_run: dict[str, Any], returncode: int, junit: str | None, said: str
) -> None:
    fake_run["returncode"], fake_run["junit"] = returncode, junit
    result = _verify(fake_run)
    assert any(said in reason for reason in result.interrupted), result.interrupted
    assert {e.status for e in result.report} == {"interrupted"}
    markdown = (fake_run["output"] / "rapport-conformite.md").read_text()
    assert "VÉRIFICATION INTERROMPUE" in markdown


def test_the_cli_exits_3_when_interrupted(
    fake_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_run["returncode"], fake_run["junit"] = 2, None
    outcome = CliRunner().invoke(
        cli.app,
        ["verify", "--inventory", str(fake_run["inventory"]), "--output", str(fake_run["output"])],
    )
    assert outcome.exit_code == cli.VERIFY_INTERRUPTED, outcome.output


def test_an_unknown_guarantee_is_refused(fake_run: dict[str, Any]) -> None:
    from educloud.errors import EducloudError

    with pytest.raises(EducloudError, match="unknown guarantee"):
        verify_mod.verify(fake_run["inventory"], fake_run["output"], guarantees=["C99"])


def test_policies_other_than_the_deployed_ones_give_no_report(fake_run: dict[str, Any]) -> None:
    fake_run["policy_problems"] = ["edu1: retention.yml (differs)"]
    with pytest.raises(
        EducloudError, match=r"not those deployed.*edu1: retention\.yml \(differs\)"
    ):
        _verify(fake_run)
    assert not (fake_run["output"] / "charter-report.json").exists()


@pytest.mark.parametrize("limit", ["edu2", "edu1,kc1", "keycloak, nextcloud"])
def test_a_limit_that_selects_nothing_gives_no_report(fake_run: dict[str, Any], limit: str) -> None:
    """A typo in --limit would turn every host check into "non exécuté" (a partial report
    instead of a refusal): each name must be a host or a group that has one."""
    with pytest.raises(EducloudError, match=r"--limit .*no host of the inventory"):
        verify_mod.verify(fake_run["inventory"], fake_run["output"], limit=limit)
    assert not (fake_run["output"] / "charter-report.json").exists()


@pytest.mark.parametrize("limit", ["edu1", "keycloak", "edu1, keycloak"])
def test_a_limit_that_selects_hosts_runs(fake_run: dict[str, Any], limit: str) -> None:
    result = verify_mod.verify(fake_run["inventory"], fake_run["output"], limit=limit)
    assert result is not None
