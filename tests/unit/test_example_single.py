"""inventories/example-single stays what `educloud init` writes for the example's answers,
Ansible reads it once a vault of the secrets init generates sits beside it, and the
policies it points at are valid and approve its hosting (issue #28).

To rewrite the example after a change of the layout: EDUCLOUD_WRITE_EXAMPLE=1 pytest
tests/unit/test_example_single.py, then review the diff."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tests.unit.init_support import example_files, template_vault_values, vault_names

from educloud import policy
from educloud.deployment import ansible
from educloud.deployment import inventory as inventory_vars
from educloud.deployment import secrets as deployment_secrets
from educloud.paths import inventories_dir, policies_dir

EXAMPLE = inventories_dir() / "example-single"


def test_example_single_is_what_init_writes() -> None:
    expected = example_files()
    if os.environ.get("EDUCLOUD_WRITE_EXAMPLE"):
        for relative, text in expected.items():
            (EXAMPLE / relative).parent.mkdir(parents=True, exist_ok=True)
            (EXAMPLE / relative).write_text(text, encoding="utf-8")
    found = {
        p.relative_to(EXAMPLE).as_posix()
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert found == set(expected), "files differ from init's layout"
    for relative, text in expected.items():
        assert (EXAMPLE / relative).read_text(encoding="utf-8") == text, (
            f"{relative} differs from what educloud init writes "
            "(EDUCLOUD_WRITE_EXAMPLE=1 rewrites it)"
        )


def test_every_vault_variable_of_the_example_is_one_init_generates() -> None:
    generated = set(deployment_secrets.passwords(regional=False)) | {
        deployment_secrets.BACKUP_PRIVATE_KEYS,
        deployment_secrets.BACKUP_PUBLIC_KEYS,
    }
    referenced = vault_names(EXAMPLE)
    assert referenced, "the example takes no secret from the vault"
    assert referenced <= generated, referenced - generated


@pytest.fixture(scope="module")
def example_with_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example beside a link to the repository's policies (the relative path
    it names), with a vault of generated secrets: what init adds."""
    root = tmp_path_factory.mktemp("example")
    inventory = root / "inventories" / "example-single"
    shutil.copytree(EXAMPLE, inventory)
    (root / "policies").symlink_to(policies_dir())
    password = root / "vault-password"
    deployment_secrets.new_password_file(password)
    secrets: dict[str, object] = {}
    deployment_secrets.complete(secrets, deployment_secrets.passwords(False), ["serveur"])
    deployment_secrets.write_vault(
        inventory / "group_vars" / "all" / "vault.yml", password, secrets, "# test\n"
    )
    (inventory / "ansible.cfg").write_text(
        "[defaults]\nvault_password_file = ../../vault-password\n", encoding="utf-8"
    )
    return inventory


def test_ansible_reads_the_example_and_every_vault_reference_resolves(
    example_with_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ansible.VAULT_ENV, raising=False)
    hosts = {h.name: h for h in inventory_vars.load(example_with_vault)}
    assert set(hosts) == {"serveur", "sauvegarde"}
    assert set(hosts["serveur"].groups) == {
        "postgresql", "redis", "keycloak", "reverse_proxy", "nextcloud", "data_rights", "backup",
    }  # fmt: skip
    assert hosts["sauvegarde"].groups == ("backup_target",)
    counts = template_vault_values(example_with_vault)
    assert counts["serveur"] >= 10
    assert counts["sauvegarde"] >= 1  # its clients' public keys


def test_the_policies_the_example_points_to_are_valid_and_approve_its_hosting(
    example_with_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ansible.VAULT_ENV, raising=False)
    directory = Path(
        str(ansible.template(example_with_vault, "serveur", "educloud_policies_dir"))
    ).resolve()
    assert directory == policies_dir().resolve()
    loaded = policy.load(directory)  # what `educloud policy --directory` runs
    declaration = inventory_vars.load(example_with_vault)[0].variables["educloud_hosting"]
    assert policy.hosting_problems(loaded, declaration) == []
