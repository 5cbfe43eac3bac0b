"""`educloud init` (issue #28): real files in a temporary folder, the real ansible-vault and
ansible-inventory. The written inventory reads through educloud.deployment (its vault opened
with the password its ansible.cfg names), every secret it refers to is in the vault, a rerun
writes nothing, --check writes nothing, bad answers change nothing and say why, existing
secrets are kept, and no secret is ever printed."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.init_support import (
    EXAMPLE_FLAGS,
    clear_vault_env,
    init,
    ok,
    raw_answers,
    template_vault_values,
    vault_names,
)
from typer.testing import CliRunner, Result

from educloud import policy
from educloud.cli.main import app
from educloud.deployment import ansible, model
from educloud.deployment import inventory as inventory_vars
from educloud.deployment import secrets as deployment_secrets
from educloud.errors import EducloudError
from educloud.init import answers as answers_mod
from educloud.init import write
from educloud.init.answers import AnswerError
from educloud.lab import secrets as lab_secrets

PASSWORD = "vault-password"  # noqa: S105 - the file's name
VAULT = "inventory/group_vars/all/vault.yml"

REGIONAL_FLAGS = [
    "--profile", "regional",
    "--public-domain", "academie-exemple.fr",
    "--organisation", "Académie exemple",
    "--postal-address", "Rectorat; 1 rue de l'Exemple; 00000 Exemple",
    *[arg for pair in (
        ("--host", f"{name}=192.0.2.{number}")
        for name, number in (
            ("lb1", 11), ("lb2", 12), ("kc1", 21), ("kc2", 22), ("nc1", 31), ("nc2", 32),
            ("db1", 41), ("db2", 42), ("db3", 43),
        )
    ) for arg in pair],
    "--backup-host", "bak1=192.0.2.51",
    "--floating-address", "192.0.2.10",
    "--provider", "educloud-lab",
    "--datacenter", "local",
    "--admin-network", "192.0.2.200/29",
    "--apt-mirror", "192.0.2.1:3142",
    "--artifact-mirror", "http://192.0.2.1:8088",
    "--smtp-relay", "192.0.2.25:587",
    "--operator-email", "exploitation@academie-exemple.fr",
    "--dpo-email", "dpo@academie-exemple.fr",
    "--certificates", "files",
    "--object-storage", "192.0.2.61",
    "--object-storage-bucket", "educloud-academie",
]  # fmt: skip


def flags(**changes: str) -> list[str]:
    """The example's flags with some values replaced (flag name without dashes, _ for -)."""
    out = list(EXAMPLE_FLAGS)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        out[out.index(flag) + 1] = value
    return out


@pytest.fixture(autouse=True)
def _no_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_vault_env(monkeypatch)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under the folder: content, mode and modification time (ns)."""
    if not directory.exists():
        return {}
    return {
        p.relative_to(directory).as_posix(): (
            p.read_bytes(),
            p.stat().st_mode,
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def vault(directory: Path) -> dict[str, object]:
    return deployment_secrets.read_vault(directory / VAULT, directory / PASSWORD, "test")


def secret_strings(directory: Path) -> list[str]:
    found: list[str] = []
    for value in vault(directory).values():
        found += [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
    return found


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """A folder written once by `educloud init` with the example's answers."""
    os.environ.pop(ansible.VAULT_ENV, None)
    directory = tmp_path_factory.mktemp("init") / "ville"
    return directory, ok(init(directory, EXAMPLE_FLAGS))


def test_the_inventory_reads_through_educloud_with_its_own_vault_password(
    deployment: tuple[Path, Result],
) -> None:
    directory, _ = deployment
    inventory = directory / "inventory"
    found_password = ansible.vault_password(inventory).path
    assert found_password is not None and found_password.resolve() == directory / PASSWORD
    hosts = {h.name: h for h in inventory_vars.load(inventory)}
    assert set(hosts) == {"serveur", "sauvegarde"}
    assert "backup_target" not in hosts["serveur"].groups
    assert hosts["sauvegarde"].groups == ("backup_target",)
    # The whole-file vault is decrypted by ansible-inventory, with the cfg's password.
    assert hosts["serveur"].variables["vault_keycloak_db_password"]
    found = model.load(inventory)
    assert found.policies_dir == directory / "policies"
    assert {s.name for s in found.sites} == {
        "auth.ecoles.ville-exemple.fr", "auth-admin.ecoles.ville-exemple.fr",
        "cloud.ecoles.ville-exemple.fr",
    }  # fmt: skip
    assert found.realms == ("ecoles",)


def test_every_vault_reference_is_defined_and_templates(deployment: tuple[Path, Result]) -> None:
    directory, _ = deployment
    referenced = vault_names(directory / "inventory")
    defined = set(vault(directory))
    assert referenced <= defined, referenced - defined
    counts = template_vault_values(directory / "inventory")
    assert counts["serveur"] >= 10 and counts["sauvegarde"] >= 1


def test_nothing_of_the_lab_is_in_the_inventory(deployment: tuple[Path, Result]) -> None:
    directory, _ = deployment
    text = "".join(
        p.read_text(encoding="utf-8")
        for p in (directory / "inventory").rglob("*")
        if p.is_file() and p.name != "vault.yml"
    )
    for lab_value in ("/var/lib/educloud-lab", ".test", "198.18.", "vault_lab_"):
        assert lab_value not in text


def test_the_policies_copy_is_valid_and_declares_the_answers_destinations(
    deployment: tuple[Path, Result],
) -> None:
    directory, _ = deployment
    loaded = policy.load(directory / "policies")
    assert (directory / "policies" / "schemas" / "egress.schema.json").is_file()
    by_purpose = {(d.purpose, d.address, d.port) for d in loaded.destinations}
    assert by_purpose == {
        ("package_mirror", "192.0.2.1", 3142),
        ("artifact_source", "192.0.2.1", 8088),
        ("mail_relay", "192.0.2.25", 25),
        ("backup_target", "192.0.2.20", 22),
    }  # the lab's destinations are gone
    assert not list((directory / "inventory").rglob("*.schema.json"))


def test_the_password_file_is_the_owners_only_and_secrets_are_never_printed(
    deployment: tuple[Path, Result],
) -> None:
    directory, result = deployment
    assert stat.S_IMODE((directory / PASSWORD).stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / VAULT).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert (directory / VAULT).read_bytes().startswith(b"$ANSIBLE_VAULT;")
    password = (directory / PASSWORD).read_text().strip()
    shown = result.output + ok(init(directory, ["--check"])).output
    for secret in [password, *secret_strings(directory)]:
        for line in secret.splitlines():
            assert line.strip() not in shown
    assert "educloud deploy --inventory " + str(directory / "inventory") in result.output
    assert "educloud verify --inventory " + str(directory / "inventory") in result.output
    readme = (directory / "README.md").read_text(encoding="utf-8")
    assert "reverse_proxy_privacy_notice" in readme and "educloud verify" in readme


def test_a_second_run_writes_nothing_and_says_so(deployment: tuple[Path, Result]) -> None:
    directory, _ = deployment
    before = snapshot(directory)
    again = ok(init(directory, EXAMPLE_FLAGS))
    assert "nothing to write" in again.output
    also = ok(init(directory, []))  # the saved answers alone
    assert "nothing to write" in also.output
    assert snapshot(directory) == before


def test_check_on_a_new_folder_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "new"
    result = ok(init(directory, [*EXAMPLE_FLAGS, "--check"]))
    assert not directory.exists()
    assert "create" in result.output and "inventory/hosts.yml" in result.output
    assert "nothing written" in result.output


def test_a_new_answer_changes_only_non_secret_files_and_the_plan_says_which(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "ville"
    ok(init(directory, EXAMPLE_FLAGS))
    before = snapshot(directory)
    planned = ok(init(directory, ["--smtp-relay", "192.0.2.26:587", "--check"]))
    assert snapshot(directory) == before  # --check
    for line in (
        "update     policies/egress.yml",
        "update     inventory/group_vars/all/init.yml",
        "update     inventory/group_vars/backup/init.yml",
        "update     inventory/group_vars/data_rights/init.yml",
        "unchanged  inventory/group_vars/all/vault.yml",
        "unchanged  vault-password",
    ):
        assert line in planned.output
    ok(init(directory, ["--smtp-relay", "192.0.2.26:587"]))
    after = snapshot(directory)
    changed = {path for path in after if after[path] != before[path]}
    assert changed == {
        "policies/egress.yml",
        "inventory/group_vars/all/init.yml",
        "inventory/group_vars/backup/init.yml",
        "inventory/group_vars/data_rights/init.yml",
        "educloud-init.yml",
    }
    assert "192.0.2.26" in (directory / "policies/egress.yml").read_text()


def test_existing_secrets_are_kept_and_only_missing_ones_added(tmp_path: Path) -> None:
    directory = tmp_path / "ville"
    ok(init(directory, EXAMPLE_FLAGS))
    first = vault(directory)
    password = (directory / PASSWORD).read_bytes()
    lacking = {k: v for k, v in first.items() if k != "vault_redis_password"}
    deployment_secrets.write_vault(directory / VAULT, directory / PASSWORD, lacking, "# older\n")
    result = ok(init(directory, []))
    assert "adds vault_redis_password" in result.output
    second = vault(directory)
    assert {k: second[k] for k in lacking} == lacking
    assert second["vault_redis_password"] != first["vault_redis_password"]
    assert (directory / PASSWORD).read_bytes() == password


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"host": "serveur=300.1.2.3"}, "--host: '300.1.2.3' is not an IP address"),
        ({"provider": "hebergeur-inconnu"}, "provider hebergeur-inconnu is not approved"),
        ({"public_domain": "https://a.fr"}, "--public-domain: 'https://a.fr' has a scheme"),
        ({"admin_network": "198.51.100.7/24"}, "has host bits set: write 198.51.100.0/24"),
        ({"apt_mirror": "http://miroir.ville.fr"}, "--apt-mirror"),
        ({"operator_email": "exploitation"}, "--operator-email: 'exploitation' is not"),
    ],
)  # fmt: skip
def test_a_bad_answer_changes_nothing_and_names_the_problem(
    tmp_path: Path, deployment: tuple[Path, Result], change: dict[str, str], expected: str
) -> None:
    fresh = tmp_path / "fresh"
    result = init(fresh, flags(**change))
    assert isinstance(result.exception, EducloudError), result.output
    assert expected in str(result.exception)
    assert "nothing written" in str(result.exception)
    assert not fresh.exists()
    existing, _ = deployment
    before = snapshot(existing)
    again = init(existing, flags(**change))
    assert expected in str(again.exception)
    assert snapshot(existing) == before


def test_a_country_outside_the_policy_is_refused(tmp_path: Path) -> None:
    result = init(tmp_path / "de", [*EXAMPLE_FLAGS, "--country", "DE"])
    assert isinstance(result.exception, AnswerError)
    assert "--country: DE is not allowed by hosting.yml (countries_allowed: FR)" in str(
        result.exception
    )
    assert not (tmp_path / "de").exists()


def test_a_missing_answer_without_a_terminal_is_refused_in_one_line(tmp_path: Path) -> None:
    args = [a for a in EXAMPLE_FLAGS if a not in ("--dpo-email", "dpo@ville-exemple.fr")]
    args = [a for a in args if a not in ("--smtp-relay", "192.0.2.25:25")]
    result = init(tmp_path / "ville", args)
    message = str(result.exception)
    assert message == "missing answers (no terminal to ask on): give --smtp-relay, --dpo-email"
    assert not (tmp_path / "ville").exists()


def test_the_privacy_notice_and_added_destinations_are_the_operators(tmp_path: Path) -> None:
    directory = tmp_path / "ville"
    ok(init(directory, EXAMPLE_FLAGS))
    notice = directory / "inventory/group_vars/reverse_proxy/privacy-notice.yml"
    edited = notice.read_text(encoding="utf-8").replace("Élèves", "Élèves, Parents")
    notice.write_text(edited, encoding="utf-8")
    egress_path = directory / "policies/egress.yml"
    egress = yaml.safe_load(egress_path.read_text())
    ntp = {
        "name": "ntp-ville",
        "purpose": "ntp",
        "description": "Serveur de temps de la ville",
        "address": "192.0.2.123",
        "port": 123,
        "protocol": "udp",
        "country": "FR",
    }
    egress["destinations"].append(ntp)
    egress_path.write_text(yaml.safe_dump(egress))
    result = ok(init(directory, ["--organisation", "Ville d'Exemple-sur-Mer"]))
    assert "kept       inventory/group_vars/reverse_proxy/privacy-notice.yml" in result.output
    assert notice.read_text(encoding="utf-8") == edited
    assert ntp in yaml.safe_load(egress_path.read_text())["destinations"]
    assert "Exemple-sur-Mer" in (directory / "inventory/group_vars/keycloak/init.yml").read_text()


def test_an_interrupted_run_is_finished_by_the_next_and_loses_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deployment: tuple[Path, Result]
) -> None:
    directory = tmp_path / "ville"
    real = write._write_atomic
    calls = []

    def interrupted(path: Path, content: bytes, mode: int) -> None:
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(path, content, mode)

    monkeypatch.setattr(write, "_write_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write.apply(write.plan(directory, *_example_raw()))
    # What a kill during a write leaves: a hidden temporary file ending in "~".
    leftover = directory / "inventory" / ".hosts.yml.abc123~"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_text("partial")
    secrets_then = vault(directory)
    monkeypatch.undo()
    monkeypatch.delenv(ansible.VAULT_ENV, raising=False)
    ok(init(directory, EXAMPLE_FLAGS))
    assert vault(directory) == secrets_then
    assert not [p for p in directory.rglob("*") if p.name.endswith("~")]
    assert set(snapshot(directory)) == set(snapshot(deployment[0]))  # as an uninterrupted run
    assert "nothing to write" in ok(init(directory, [])).output


def _example_raw() -> tuple[str, dict[str, str | list[str] | bool]]:
    profile, raw = raw_answers(EXAMPLE_FLAGS)
    return profile, answers_mod.normalize(raw, profile)


def test_a_vault_without_its_password_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ville"
    ok(init(directory, EXAMPLE_FLAGS))
    (directory / PASSWORD).unlink()
    result = init(directory, [])
    assert "exists but its password" in str(result.exception)
    assert not (directory / PASSWORD).exists()


def test_the_regional_profile_takes_the_object_storage_keys_once(tmp_path: Path) -> None:
    directory = tmp_path / "academie"
    refused = init(directory, REGIONAL_FLAGS)
    assert "EDUCLOUD_NEXTCLOUD_S3_KEY" in str(refused.exception)
    assert not (directory / "inventory").exists()
    keys = {
        "EDUCLOUD_NEXTCLOUD_S3_KEY": "ACCESS-KEY-1",
        "EDUCLOUD_NEXTCLOUD_S3_SECRET": "s3-secret-1",
    }
    result = ok(init(directory, REGIONAL_FLAGS, env=keys))
    assert "s3-secret-1" not in result.output
    stored = vault(directory)
    assert stored["vault_nextcloud_s3_secret"] == keys["EDUCLOUD_NEXTCLOUD_S3_SECRET"]
    assert set(deployment_secrets.REGIONAL_PASSWORDS) <= set(stored)
    assert set(stored["vault_backup_ssh_private_keys"]) == {  # type: ignore[arg-type]
        "kc1", "kc2", "nc1", "nc2", "db1", "db2", "db3", "lb1",
    }  # fmt: skip
    assert "nothing to write" in ok(init(directory, [])).output  # the keys are in the vault
    hosts = {h.name: h for h in inventory_vars.load(directory / "inventory")}
    assert set(hosts["db1"].groups) == {"etcd", "postgresql", "redis", "backup"}
    assert hosts["lb1"].variables["regional_load_balancer_address"] == "192.0.2.10"
    assert vault_names(directory / "inventory") <= set(stored)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--host", "web1=192.0.2.99"], "a regional host's name starts with its tier"),
        (["--certificates", "internal"], "would not trust the internal CA"),
    ],
)
def test_regional_answers_are_checked_together(
    tmp_path: Path, change: list[str], expected: str
) -> None:
    args = list(REGIONAL_FLAGS)
    if change[0] == "--certificates":
        args[args.index("--certificates") + 1] = change[1]
    else:
        args += change
    result = init(tmp_path / "academie", args)
    assert expected in str(result.exception)
    assert not (tmp_path / "academie").exists()


def test_the_lab_and_init_share_the_deployment_secrets() -> None:
    lab_only = set(lab_secrets.LAB_SECRETS) - set(deployment_secrets.passwords(regional=True))
    assert lab_only == {"vault_lab_test_user_password", "vault_lab_realm_admin_password"}
    lab_inventories = Path(__file__).resolve().parents[2] / "inventories"
    for name in ("lab", "lab-regional"):
        referenced = vault_names(lab_inventories / name)
        keypair = {n for pair in lab_secrets.LAB_KEYPAIRS for n in pair}
        assert referenced <= set(lab_secrets.LAB_SECRETS) | keypair, name


def test_on_a_terminal_only_the_missing_answers_are_asked_again_until_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from educloud.cli import init as init_cli

    monkeypatch.setattr(init_cli, "_interactive", lambda: True)
    args = [a for a in EXAMPLE_FLAGS if a not in ("--dpo-email", "dpo@ville-exemple.fr")]
    answers = "pas-une-adresse\ndpo@ville-exemple.fr\n"
    result = CliRunner().invoke(app, ["init", str(tmp_path / "ville"), *args], input=answers)
    ok(result)
    assert "--dpo-email: 'pas-une-adresse' is not a plain e-mail address" in result.output
    assert result.output.count("data protection officer") == 2  # asked twice, nothing else
    saved = yaml.safe_load((tmp_path / "ville" / "educloud-init.yml").read_text())
    assert saved["answers"]["dpo_email"] == "dpo@ville-exemple.fr"


def _acme_flags(*extra: str) -> list[str]:
    return [
        *flags(certificates="acme"),
        "--acme-directory", "https://acme.ca.example.fr:14000/directory",
        *extra,
    ]  # fmt: skip


def test_acme_declares_its_ca_as_a_destination(tmp_path: Path) -> None:
    """The ACME CA is a destination of the policies' copy (purpose acme_ca, the directory's
    port), so the firewall lets the server order its certificates (#28)."""
    directory = tmp_path / "acme"
    ok(init(directory, _acme_flags("--acme-address", "192.0.2.80")))
    loaded = policy.load(directory / "policies")
    acme = [d for d in loaded.destinations if d.purpose == "acme_ca"]
    assert [(d.address, d.port, d.protocol, d.country) for d in acme] == [
        ("192.0.2.80", 14000, "tcp", "FR")
    ]
    settings = yaml.safe_load(
        (directory / "inventory/group_vars/reverse_proxy/init.yml").read_text(encoding="utf-8")
    )
    assert settings["reverse_proxy_certificate_source"] == "acme"
    assert settings["reverse_proxy_acme_directory_url"].endswith(":14000/directory")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), "--acme-address"),
        (("--acme-address", "acme.ca.example.fr"), "--acme-address"),
        (("--acme-address", "0.0.0.0/0"), "--acme-address"),
    ],
    ids=["missing", "a name, not an address", "every address"],
)
def test_acme_without_a_usable_ca_address_writes_nothing(
    tmp_path: Path, extra: tuple[str, ...], expected: str
) -> None:
    directory = tmp_path / "acme"
    result = init(directory, _acme_flags(*extra))
    assert isinstance(result.exception, EducloudError), result.output
    assert expected in str(result.exception)
    assert not directory.exists()


def test_the_vault_ignores_the_operators_own_vault_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's exported ANSIBLE_VAULT_PASSWORD_FILE (another deployment's) neither
    stops init from writing its vault nor decides which password reads it."""
    other = tmp_path / "other-password"
    other.write_text("another deployment's password\n", encoding="utf-8")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(other))
    monkeypatch.setenv("ANSIBLE_VAULT_IDENTITY_LIST", f"other@{other}")
    password = tmp_path / "vault-password"
    deployment_secrets.new_password_file(password)
    vault = tmp_path / "vault.yml"
    deployment_secrets.write_vault(vault, password, {"vault_x": "secret-value"}, "# test\n")
    assert deployment_secrets.read_vault(vault, password, "test") == {"vault_x": "secret-value"}


def _admin_site_of_the_retention_run(directory: Path) -> tuple[str, dict[str, Any]]:
    """The data_rights host's retention target, and that admin site's entry."""
    hosts = inventory_vars.load(directory / "inventory")
    (host,) = [h for h in hosts if "data_rights" in h.groups]
    admin = str(host.variables["retention_keycloak_url"]).removeprefix("https://")
    (site,) = [s for s in host.variables["reverse_proxy_sites"] if s["name"] == admin]
    return admin, {"static_hosts": host.variables["retention_static_hosts"], **site}


def test_the_retention_run_may_sign_in_through_its_own_admin_site(
    deployment: tuple[Path, Result], tmp_path: Path
) -> None:
    # The run signs in from the host itself (127.0.0.1, /etc/hosts): an admin site open to
    # the administrators' networks only answered it 403, and C7 failed on the lab.
    keys = {"EDUCLOUD_NEXTCLOUD_S3_KEY": "K", "EDUCLOUD_NEXTCLOUD_S3_SECRET": "S"}
    ok(init(tmp_path / "academie", REGIONAL_FLAGS, env=keys))
    for directory in (deployment[0], tmp_path / "academie"):
        admin, site = _admin_site_of_the_retention_run(directory)
        assert site["static_hosts"] == {admin: "127.0.0.1"}
        assert "union(['127.0.0.1/32'])" in site["allow_networks"]
        assert "educloud_admin_networks" in site["allow_networks"]
