"""`educloud init --backup-provider`: backups at a provider's SFTP account or S3 storage
instead of a backup server of the inventory. Real files in a temporary folder, the real
ansible-vault and ansible-inventory: no backup_target group nor host, the backup group's
variables for the role's sftp or s3 destination, one backup-provider destination in the
policies copy, the S3 keys in the vault only, and bad answers refused before anything is
written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.unit.init_support import (
    EXAMPLE_FLAGS,
    clear_vault_env,
    init,
    ok,
    template_vault_values,
    vault_names,
)

from educloud import policy
from educloud.deployment import inventory as inventory_vars
from educloud.deployment import secrets as deployment_secrets
from educloud.errors import EducloudError
from educloud.init import answers as answers_mod

PASSWORD = "vault-password"  # noqa: S105 - the file's name
VAULT = "inventory/group_vars/all/vault.yml"
BACKUP_VARS = "inventory/group_vars/backup/init.yml"
KEY_ID = "AKIDBACKUPTEST42"
SECRET = "s3-backup-secret-value-7"  # noqa: S105 - a test value
# The provider's server host key, with a comment (init keeps the type and key only).
HOST_KEY = deployment_secrets.ssh_keypair("sftp.prestataire.fr")[1]
CA = "-----BEGIN CERTIFICATE-----\nMIIBtestcertificatebody0123456789\n-----END CERTIFICATE-----\n"

# The example's answers without its backup server.
_AT = EXAMPLE_FLAGS.index("--backup-host")
BASE = EXAMPLE_FLAGS[:_AT] + EXAMPLE_FLAGS[_AT + 2 :]
SFTP_URL = "sftp://u123@203.0.113.7:2222/educloud"
S3_URL = "s3://203.0.113.8/ville-sauvegardes/ecoles"


@pytest.fixture(autouse=True)
def _no_vault_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_vault_env(monkeypatch)


def vault(directory: Path) -> dict[str, object]:
    return deployment_secrets.read_vault(directory / VAULT, directory / PASSWORD, "test")


def written_text(directory: Path) -> str:
    """Every file init wrote but the vault (and its password), as text."""
    return "".join(
        p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in {"vault.yml", PASSWORD}
    )


def files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def s3_files(tmp_path: Path) -> tuple[Path, Path]:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"# from the provider\nAWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY={SECRET}\n",
        encoding="utf-8",
    )
    ca = tmp_path / "ca.pem"
    ca.write_text(CA, encoding="ascii")
    return credentials, ca


def test_an_sftp_provider_replaces_the_backup_server(tmp_path: Path) -> None:
    directory = tmp_path / "ville"
    args = [*BASE, "--backup-provider", SFTP_URL, "--backup-provider-host-key", HOST_KEY]
    ok(init(directory, args))
    inventory = directory / "inventory"
    hosts = {h.name: h for h in inventory_vars.load(inventory)}  # ansible-inventory, the vault
    assert set(hosts) == {"serveur"}
    assert (
        "backup_target"
        not in yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]
    )
    assert not (inventory / "group_vars" / "backup_target").exists()
    variables = hosts["serveur"].variables
    assert variables["backup_destination"] == "sftp"
    assert variables["backup_sftp_address"] == "203.0.113.7"
    assert variables["backup_sftp_port"] == 2222
    assert variables["backup_sftp_user"] == "u123"
    assert variables["backup_sftp_path"] == "educloud/{{ inventory_hostname }}"
    assert variables["backup_sftp_host_key"] == " ".join(HOST_KEY.split()[:2])
    assert "backup_target_host" not in variables
    stored = vault(directory)
    assert vault_names(inventory) <= set(stored)
    assert template_vault_values(inventory)["serveur"] >= 10
    # One backup_target destination: the provider's, in the hosting country.
    loaded = policy.load(directory / "policies")
    backups = [d for d in loaded.destinations if d.purpose == "backup_target"]
    assert [(d.name, d.address, d.port, d.protocol, d.country) for d in backups] == [
        ("backup-provider", "203.0.113.7", 2222, "tcp", "FR")
    ]
    # The README says which public key to install on the account.
    public = stored[deployment_secrets.BACKUP_PUBLIC_KEYS]
    assert isinstance(public, dict)
    readme = (directory / "README.md").read_text(encoding="utf-8")
    assert public["serveur"] in readme and "`u123`" in readme and "authorized_keys" in readme
    saved = yaml.safe_load((directory / "educloud-init.yml").read_text())["answers"]
    assert saved["backup_provider"] == SFTP_URL
    assert saved["backup_provider_host_key"] == " ".join(HOST_KEY.split()[:2])
    assert "backup_host" not in saved
    before = files(directory)
    assert "nothing to write" in ok(init(directory, [])).output
    assert files(directory) == before


def test_an_s3_provider_keeps_its_keys_in_the_vault_only(
    tmp_path: Path, s3_files: tuple[Path, Path]
) -> None:
    credentials, ca = s3_files
    directory = tmp_path / "ville"
    args = [
        *BASE, "--backup-provider", S3_URL, "--backup-provider-name", "s3.prestataire.fr",
        "--backup-provider-ca", str(ca), "--backup-provider-credentials", str(credentials),
    ]  # fmt: skip
    check = ok(init(directory, [*args, "--check"]))
    assert "create     inventory/group_vars/backup/init.yml" in check.output
    assert not directory.exists()
    result = ok(init(directory, args))
    assert KEY_ID not in result.output and SECRET not in result.output
    stored = vault(directory)
    assert stored["vault_backup_s3_access_key_id"] == KEY_ID
    assert stored["vault_backup_s3_secret_access_key"] == SECRET
    assert deployment_secrets.BACKUP_PRIVATE_KEYS not in stored  # no SSH key for S3
    text = written_text(directory)
    assert KEY_ID not in text and SECRET not in text
    inventory = directory / "inventory"
    hosts = {h.name: h for h in inventory_vars.load(inventory)}
    assert set(hosts) == {"serveur"}
    variables = hosts["serveur"].variables
    assert variables["backup_destination"] == "s3"
    assert (variables["backup_s3_address"], variables["backup_s3_port"]) == ("203.0.113.8", 443)
    assert variables["backup_s3_endpoint"] == "s3.prestataire.fr"
    assert variables["backup_s3_bucket"] == "ville-sauvegardes"
    assert variables["backup_s3_prefix"] == "ecoles/{{ inventory_hostname }}"
    assert variables["backup_s3_ca_certificate"] == CA
    reference = "{{ vault_backup_s3_secret_access_key }}"
    assert variables["backup_s3_secret_access_key"] == reference
    assert vault_names(inventory) <= set(stored)
    assert template_vault_values(inventory)["serveur"] >= 10
    destinations = yaml.safe_load((directory / "policies" / "egress.yml").read_text())
    backups = [d for d in destinations["destinations"] if d["purpose"] == "backup_target"]
    assert [(d["name"], d["address"], d["port"]) for d in backups] == [
        ("backup-provider", "203.0.113.8", 443)
    ]
    saved = yaml.safe_load((directory / "educloud-init.yml").read_text())["answers"]
    assert saved["backup_provider"] == "s3://203.0.113.8:443/ville-sauvegardes/ecoles"
    assert saved["backup_provider_ca"] == str(ca)
    # A rerun needs no credentials (they are in the vault), and never replaces them.
    before = files(directory)
    assert "nothing to write" in ok(init(directory, [])).output
    other = tmp_path / "other"
    other.write_text("AWS_ACCESS_KEY_ID=NEWKEY\nAWS_SECRET_ACCESS_KEY=new-secret-1\n")
    again = ok(init(directory, ["--backup-provider-credentials", str(other)]))
    assert "vault_backup_s3_access_key_id is kept" in again.output
    assert files(directory) == before


def test_an_s3_provider_without_a_prefix_leaves_the_roles_default(
    tmp_path: Path, s3_files: tuple[Path, Path]
) -> None:
    credentials, _ = s3_files
    directory = tmp_path / "ville"
    url = "s3://203.0.113.8:9000/ville-sauvegardes"
    ok(init(directory, [*BASE, "--backup-provider", url, "--backup-provider-credentials",
                        str(credentials)]))  # fmt: skip
    text = (directory / BACKUP_VARS).read_text()
    assert "backup_s3_prefix" not in text and "backup_s3_endpoint" not in text
    assert "backup_s3_ca_certificate" not in text and "backup_s3_port: 9000\n" in text


def test_a_regional_deployment_at_an_sftp_provider(tmp_path: Path) -> None:
    from tests.unit.test_init import REGIONAL_FLAGS

    at = REGIONAL_FLAGS.index("--backup-host")
    args = [
        *REGIONAL_FLAGS[:at], *REGIONAL_FLAGS[at + 2 :],
        "--backup-provider", "sftp://edu@203.0.113.7//srv/sauvegardes",
        "--backup-provider-host-key", HOST_KEY,
    ]  # fmt: skip
    directory = tmp_path / "academie"
    keys = {"EDUCLOUD_NEXTCLOUD_S3_KEY": "K", "EDUCLOUD_NEXTCLOUD_S3_SECRET": "s3-secret-1"}
    ok(init(directory, args, env=keys))
    hosts = {h.name: h for h in inventory_vars.load(directory / "inventory")}
    assert "bak1" not in hosts
    assert all("backup_target" not in h.groups for h in hosts.values())
    assert hosts["db1"].variables["backup_sftp_path"] == "/srv/sauvegardes/{{ inventory_hostname }}"
    public = vault(directory)[deployment_secrets.BACKUP_PUBLIC_KEYS]
    assert isinstance(public, dict) and len(public) == 8
    readme = (directory / "README.md").read_text(encoding="utf-8")
    assert all(key in readme for key in public.values())


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--backup-provider", "ftp://u@203.0.113.7/x"], "is not sftp://USER@ADDRESS"),
        (["--backup-provider", "sftp://u@sftp.prestataire.fr/x", "--backup-provider-host-key",
          HOST_KEY], "give the provider by IP address"),
        (["--backup-provider", "sftp://203.0.113.7/x", "--backup-provider-host-key", HOST_KEY],
         "give the provider's account"),
        (["--backup-provider", "sftp://u@203.0.113.7/", "--backup-provider-host-key", HOST_KEY],
         "give the directory on the account"),
        (["--backup-provider", "sftp://u:pw@203.0.113.7/x", "--backup-provider-host-key",
          HOST_KEY], "no query, fragment or password"),
        (["--backup-provider", "s3://203.0.113.8/Bad_Bucket"], "is not an S3 bucket name"),
        (["--backup-provider", "s3://203.0.113.8:99999/bucket"], "not a valid port"),
        (["--backup-provider", "sftp://u@192.0.2.10/x", "--backup-provider-host-key", HOST_KEY],
         "192.0.2.10 is an address of this deployment"),
        (["--backup-provider", "sftp://u@203.0.113.7/x"],
         "missing answers (no terminal to ask on): give --backup-provider-host-key"),
        (["--backup-provider", "sftp://u@203.0.113.7/x", "--backup-provider-host-key",
          "ssh-ed25519 notbase64!"], "--backup-provider-host-key: "),
        (["--backup-provider", "sftp://u@203.0.113.7/x", "--backup-provider-host-key",
          HOST_KEY.replace("ssh-ed25519", "ssh-rsa", 1)], "ssh-rsa: its key is not of that type"),
        (["--backup-provider", "s3://203.0.113.8/bucket"],
         "--backup-provider-credentials is missing, nothing written"),
        (["--backup-provider", "s3://203.0.113.8/bucket", "--backup-provider-host-key",
          HOST_KEY], "--backup-provider-host-key is not for an s3 provider"),
        (["--backup-provider", "sftp://u@203.0.113.7/x", "--backup-provider-host-key", HOST_KEY,
          "--backup-provider-name", "s3.prestataire.fr"],
         "--backup-provider-name is not for an sftp provider"),
        (["--backup-provider", "sftp://u@203.0.113.7/x", "--backup-provider-host-key", HOST_KEY,
          "--backup-provider-credentials", "/dev/null"],
         "--backup-provider-credentials is for an s3 --backup-provider"),
        (["--backup-provider", "s3://203.0.113.8/bucket", "--backup-provider-ca", "/nonexistent"],
         "--backup-provider-ca: '/nonexistent': no such file"),
        (["--backup-host", "sauvegarde=192.0.2.20", "--backup-provider",
          "s3://203.0.113.8/bucket"], "--backup-host/--backup-provider: give one of the two"),
        ([], "give --backup-host or --backup-provider"),
    ],
)  # fmt: skip
def test_bad_provider_answers_are_refused_before_anything_is_written(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    directory = tmp_path / "ville"
    result = init(directory, [*BASE, *extra])
    assert isinstance(result.exception, EducloudError), result.output
    assert expected in str(result.exception)
    assert not directory.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"AWS_ACCESS_KEY_ID={KEY_ID}\n", "has no AWS_SECRET_ACCESS_KEY=... line"),
        (f"AWS_SECRET_ACCESS_KEY={SECRET}\n", "has no AWS_ACCESS_KEY_ID=... line"),
        (f"AWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY=tiny7\n", "shorter than 8"),
    ],
)
def test_bad_credentials_are_refused_without_showing_them(
    tmp_path: Path, content: str, expected: str
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(content, encoding="utf-8")
    directory = tmp_path / "ville"
    args = [*BASE, "--backup-provider", "s3://203.0.113.8/bucket"]
    result = init(directory, [*args, "--backup-provider-credentials", str(credentials)])
    assert isinstance(result.exception, EducloudError), result.output
    message = str(result.exception)
    assert expected in message and "nothing written" in message
    assert KEY_ID not in message and SECRET not in message and "tiny7" not in message
    assert not directory.exists()


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("sftp://u@203.0.113.7/abs", "sftp://u@203.0.113.7:22/abs"),
        ("sftp://u@203.0.113.7//abs/path/", "sftp://u@203.0.113.7:22//abs/path"),
        ("sftp://u@[2001:db8::7]:2022/x", "sftp://u@[2001:db8::7]:2022/x"),
        ("s3://203.0.113.8/bucket/", "s3://203.0.113.8:443/bucket"),
        ("s3://203.0.113.8:8443/bucket/a/b", "s3://203.0.113.8:8443/bucket/a/b"),
    ],
)
def test_provider_urls_are_normalized_and_stable(url: str, normalized: str) -> None:
    assert answers_mod.normalize_one("backup_provider", url) == normalized
    assert answers_mod.normalize_one("backup_provider", normalized) == normalized


def test_a_given_backup_answer_replaces_the_saved_other_one() -> None:
    saved: answers_mod.Raw = {"backup_host": "b=192.0.2.20", "hosts": ["s=192.0.2.10"]}
    merged = answers_mod.merged(saved, {"backup_provider": "s3://203.0.113.8:443/bucket"})
    assert "backup_host" not in merged and merged["hosts"] == ["s=192.0.2.10"]
    provider: answers_mod.Raw = {
        "backup_provider": "sftp://u@203.0.113.7:22/x",
        "backup_provider_host_key": "ssh-ed25519 AAAA",
    }
    assert answers_mod.merged(provider, {"backup_host": "b=192.0.2.20"}) == {
        "backup_host": "b=192.0.2.20"
    }
    to_s3 = answers_mod.merged(provider, {"backup_provider": "s3://203.0.113.8:443/bucket"})
    assert to_s3 == {"backup_provider": "s3://203.0.113.8:443/bucket"}
