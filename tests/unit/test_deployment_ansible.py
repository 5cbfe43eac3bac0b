"""Where the vault password comes from, and values templated by Ansible itself (real
ansible-vault and ansible on a scratch inventory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from educloud.deployment import ansible
from educloud.deployment import inventory as inventory_vars
from educloud.errors import EducloudError

SECRET = "s3cr3t-value-never-printed"  # noqa: S105 (a test value)


def _vaulted_inventory(root: Path, password: str = "pw") -> tuple[Path, Path]:  # noqa: S107
    """An inventory with one host and an encrypted group_vars file; its password file."""
    inventory = root / "inv"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    srv1:\n      ansible_connection: local\n"
        '      service_secret: "{{ vault_service_secret }}"\n'
    )
    password_file = root / "vault-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    vault = inventory / "group_vars" / "all" / "vault.yml"
    vault.write_text(f"vault_service_secret: {SECRET}\n")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password_file),
            str(vault),
        ],
        check=True,
        capture_output=True,
    )
    return inventory, password_file


@pytest.fixture(autouse=True)
def _no_password_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ansible.VAULT_ENV, raising=False)
    inventory_vars._read.clear()


def test_no_password_for_an_encrypted_inventory_names_every_way_to_give_one(
    tmp_path: Path,
) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    with pytest.raises(EducloudError) as caught:
        ansible.ansible_env(inventory)
    message = str(caught.value)
    assert "group_vars/all/vault.yml" in message
    assert "--vault-password-file" in message and ansible.VAULT_ENV in message
    assert str(inventory / "ansible.cfg") in message


def test_an_inventory_without_encrypted_files_needs_no_password(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    srv1:\n")
    env = ansible.ansible_env(tmp_path)
    assert ansible.VAULT_ENV not in env


def test_the_inventory_ansible_cfg_gives_the_password_file(tmp_path: Path) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    (inventory / "ansible.cfg").write_text("[defaults]\nvault_password_file = ../vault-password\n")
    found = ansible.vault_password(inventory)
    assert found.path == inventory / ".." / "vault-password"
    assert "ansible.cfg" in found.source
    assert ansible.ansible_env(inventory)[ansible.VAULT_ENV] == str(found.path)


def test_the_environment_wins_over_the_inventory_cfg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory, password_file = _vaulted_inventory(tmp_path)
    (inventory / "ansible.cfg").write_text("[defaults]\nvault_password_file = /nowhere\n")
    monkeypatch.setenv(ansible.VAULT_ENV, str(password_file))
    assert ansible.vault_password(inventory).path == password_file


def test_a_missing_password_file_is_named_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    monkeypatch.setenv(ansible.VAULT_ENV, str(tmp_path / "absent"))
    with pytest.raises(EducloudError, match=r"absent \(from ANSIBLE_VAULT_PASSWORD_FILE\)"):
        ansible.ansible_env(inventory)


def test_template_reads_a_vaulted_value_without_printing_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    (inventory / "ansible.cfg").write_text("[defaults]\nvault_password_file = ../vault-password\n")
    assert ansible.template(inventory, "srv1", "service_secret") == SECRET
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_a_wrong_password_says_where_the_password_came_from(tmp_path: Path) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    (inventory / "ansible.cfg").write_text(f"[defaults]\nvault_password_file = {wrong}\n")
    with pytest.raises(EducloudError, match=r"Decryption failed.*from vault_password_file in"):
        inventory_vars.load(inventory)


def test_template_of_an_undefined_value_names_the_expression_only(tmp_path: Path) -> None:
    inventory, _ = _vaulted_inventory(tmp_path)
    (inventory / "ansible.cfg").write_text("[defaults]\nvault_password_file = ../vault-password\n")
    with pytest.raises(EducloudError, match="'no_such_value' for srv1") as caught:
        ansible.template(inventory, "srv1", "no_such_value")
    assert SECRET not in str(caught.value)
