"""No silent fallback (issue #28 item 4), on the live lab: a copy of the lab's inventory
whose policies differ from the deployed ones, whose vault password is missing, or whose
policies path is a template, as an operator could write them. Each gives a clear error and
no report; a templated path to the deployed policies verifies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from tests.integration.educloud_cli import run_educloud

from educloud.paths import inventories_dir, repo_root

pytestmark = pytest.mark.lab

LAB = inventories_dir() / "lab"


def _inventory(root: Path, *, vault_config: bool = True, policies: str | None = None) -> Path:
    """A copy of the lab's inventory under `root` (the vault a link to the lab's)."""
    copy = root / "inventory"
    shutil.copytree(LAB, copy, symlinks=True, ignore=shutil.ignore_patterns("ansible.cfg"))
    if vault_config:
        shutil.copy(LAB / "ansible.cfg", copy / "ansible.cfg")
    if policies is not None:
        (copy / "group_vars" / "all" / "zz-policies.yml").write_text(
            yaml.safe_dump({"educloud_policies_dir": policies}), encoding="utf-8"
        )
    return copy


def _policies(root: Path, *, longer_logs: bool) -> Path:
    copy = root / "policies-copy"
    shutil.copytree(repo_root() / "policies", copy)
    if longer_logs:
        retention = copy / "retention.yml"
        text = retention.read_text(encoding="utf-8")
        changed = text.replace("retention_days: 30", "retention_days: 45", 1)
        assert changed != text
        retention.write_text(changed, encoding="utf-8")
    return copy


def _verify(inventory: Path, output: Path) -> tuple[int, str]:
    done = run_educloud(
        "verify",
        "--inventory",
        str(inventory),
        "--output",
        str(output),
        "--guarantee",
        "C6",
        timeout=600,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_policies_other_than_the_deployed_ones_are_refused(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, policies=str(_policies(tmp_path, longer_logs=True)))
    code, said = _verify(inventory, tmp_path / "out")
    assert code == 2, said
    assert "retention.yml (differs)" in said and "not those deployed" in said, said
    assert not (tmp_path / "out" / "charter-report.json").exists()


def test_a_templated_policies_path_is_the_one_verified(tmp_path: Path) -> None:
    """Rendered as the plays render it: pointing at changed policies is refused..."""
    _policies(tmp_path, longer_logs=True)
    inventory = _inventory(tmp_path, policies="{{ inventory_dir }}/../policies-copy")
    code, said = _verify(inventory, tmp_path / "out")
    assert code == 2 and "retention.yml (differs)" in said, said


def test_a_templated_path_to_the_deployed_policies_verifies(tmp_path: Path) -> None:
    """... and pointing at the deployed ones verifies."""
    _policies(tmp_path, longer_logs=False)
    inventory = _inventory(tmp_path, policies="{{ inventory_dir }}/../policies-copy")
    code, said = _verify(inventory, tmp_path / "out")
    assert code in (0, 1), said
    assert (tmp_path / "out" / "charter-report.json").exists(), said


@pytest.mark.parametrize("command", ["verify", "deploy"])
def test_a_missing_vault_password_is_named_before_anything_runs(
    tmp_path: Path, command: str
) -> None:
    inventory = _inventory(tmp_path, vault_config=False)
    args = ["--check"] if command == "deploy" else ["--output", str(tmp_path / "out")]
    done = run_educloud(
        command, "--inventory", str(inventory), *args, unset=("ANSIBLE_VAULT_PASSWORD_FILE",)
    )
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, said
    assert "no vault password was given" in said and "--vault-password-file" in said, said
    assert "Decryption failed" not in said and "Traceback" not in said, said
    assert "PLAY" not in said  # Ansible never started
