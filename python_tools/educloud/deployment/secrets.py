"""The secrets a deployment needs: which, how each is made, and the Ansible Vault that keeps
them. One list for every inventory that generates its vault (`educloud init`, the lab), so
that they never disagree on what the roles are given. Values are never printed nor logged.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from educloud.commands import run
from educloud.errors import EducloudError

# Every password and client secret of a deployment, as the vault_* variables its inventory
# refers to (each role takes it from the vault, no_log on every task that touches one).
PASSWORDS = (
    # Keycloak's bootstrap administrator (used once, then deleted) and the platform
    # administrator's initial password.
    "vault_keycloak_admin_password",
    # Master's automation client (client credentials): Ansible, the tests and the tools.
    "vault_keycloak_automation_client_secret",
    "vault_keycloak_db_password",
    "vault_nextcloud_oidc_client_secret",
    "vault_nextcloud_db_password",
    "vault_nextcloud_admin_password",
    "vault_redis_password",
    # The accounts tool's service clients (educloud accounts): daily, and bulk import.
    "vault_accounts_client_secret",
    "vault_accounts_bulk_client_secret",
    # Retention, exports and statistics (C7, C8, C12).
    "vault_data_rights_client_secret",
    # The illicit-content report service (C9).
    "vault_reports_db_password",
    "vault_reports_form_secret",
    "vault_reports_moderation_token",
    # restic's repository key (C10): without it no backup can be read.
    "vault_backup_repository_password",
)
# The regional topology (issue #9): Patroni's PostgreSQL superuser, replication user and
# REST API, keepalived's VRRP password (the load balancers' floating address), and the name
# of replicated Redis's CONFIG command, which only the database hosts and their Sentinels
# know (the application servers hold vault_redis_password; issue #26).
REGIONAL_PASSWORDS = (
    "vault_patroni_superuser_password",
    "vault_patroni_replication_password",
    "vault_patroni_rest_password",
    "vault_vrrp_password",
    "vault_redis_config_command",
)
# One SSH key pair per backed-up host, keyed by inventory name: the private half opens that
# host's own append-only account on the backup target, which authorizes the public half.
BACKUP_PRIVATE_KEYS = "vault_backup_ssh_private_keys"
BACKUP_PUBLIC_KEYS = "vault_backup_ssh_public_keys"
# Secrets nobody can generate here: credentials a provider gives (the regional topology's
# S3 object storage). The operator hands them in once (environment or a hidden prompt).
PROVIDED_REGIONAL = ("vault_nextcloud_s3_key", "vault_nextcloud_s3_secret")
# The keys of an S3 backup provider (`educloud init --backup-provider s3://...`), handed in
# once with --backup-provider-credentials.
PROVIDED_BACKUP_S3 = ("vault_backup_s3_access_key_id", "vault_backup_s3_secret_access_key")


def passwords(regional: bool) -> tuple[str, ...]:
    """The generated passwords of a single-server or a regional deployment."""
    return PASSWORDS + (REGIONAL_PASSWORDS if regional else ())


def provided(regional: bool) -> tuple[str, ...]:
    return PROVIDED_REGIONAL if regional else ()


def provided_env(name: str) -> str:
    """The environment variable a provided secret is read from: vault_x_y -> EDUCLOUD_X_Y."""
    return "EDUCLOUD_" + name.removeprefix("vault_").upper()


def new_password() -> str:
    # Letters, digits and symbols so that every role's password policy accepts them.
    return secrets.token_urlsafe(24) + "aA1!"


def ssh_keypair(comment: str) -> tuple[str, str]:
    """A new Ed25519 key pair in OpenSSH formats: (private key, public key line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode('ascii')} {comment}"


def complete(
    current: MutableMapping[str, Any],
    names: Iterable[str],
    backup_clients: Iterable[str] = (),
    comment: str = "educloud-backup",
) -> list[str]:
    """Add to `current` what it lacks: each password of `names`, and a backup key pair for
    each of `backup_clients`. Nothing present is ever replaced. Returns the names added
    (a key pair as vault_backup_ssh_private_keys[host]), never values."""
    added = []
    for name in names:
        if name not in current:
            current[name] = new_password()
            added.append(name)
    clients = list(backup_clients)
    if clients:
        private = current.setdefault(BACKUP_PRIVATE_KEYS, {})
        public = current.setdefault(BACKUP_PUBLIC_KEYS, {})
        if not isinstance(private, MutableMapping) or not isinstance(public, MutableMapping):
            raise EducloudError(
                f"the vault's {BACKUP_PRIVATE_KEYS} and {BACKUP_PUBLIC_KEYS} must be "
                "mappings of inventory host names to keys"
            )
        for host in clients:
            if host in private and host in public:
                continue
            private[host], public[host] = ssh_keypair(f"{comment}@{host}")
            added.append(f"{BACKUP_PRIVATE_KEYS}[{host}]")
    return added


def ansible_vault() -> str:
    """The ansible-vault of this interpreter's environment (the pinned Ansible)."""
    return str(Path(sys.executable).parent / "ansible-vault")


# Vault settings of the caller's environment (an operator's usual password file, identity
# list, or an ansible.cfg naming one): ansible-vault would add them to the password file
# given here, and refuse to encrypt with two "default" ids, or decrypt with the wrong one.
_VAULT_ENV = (
    "ANSIBLE_VAULT_PASSWORD_FILE",
    "ANSIBLE_VAULT_IDENTITY_LIST",
    "ANSIBLE_VAULT_IDENTITY",
    "ANSIBLE_CONFIG",
)


def _vault(argv: list[str], *, what: str, input_text: str | None = None) -> str:
    """ansible-vault with only the password file `argv` gives it: none of the environment's
    vault settings, and an empty configuration file instead of any ansible.cfg."""
    env = {k: v for k, v in os.environ.items() if k not in _VAULT_ENV}
    with tempfile.TemporaryDirectory(prefix="educloud-vault-") as empty:
        config = Path(empty) / "ansible.cfg"
        config.write_text("[defaults]\n", encoding="utf-8")
        env["ANSIBLE_CONFIG"] = str(config)
        return run(argv, what=what, env=env, input_text=input_text).stdout


def new_password_file(path: Path) -> None:
    """A new random vault password, readable by its owner only; never replaces a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")


def read_vault(vault: Path, password_file: Path, how_to_fix: str) -> dict[str, Any]:
    """The vault's secrets, decrypted in memory ({} when it does not exist)."""
    if not vault.exists():
        return {}
    clear = _vault(
        [ansible_vault(), "view", "--vault-password-file", str(password_file), str(vault)],
        what=f"reading the vault {vault} ({how_to_fix})",
    )
    data = yaml.safe_load(clear) or {}
    if not isinstance(data, dict):
        raise EducloudError(f"the vault {vault} does not hold a mapping of vault_* variables")
    return {str(key): value for key, value in data.items()}


def write_vault(vault: Path, password_file: Path, data: Mapping[str, Any], header: str) -> None:
    """Encrypt `data` into `vault` with the real ansible-vault, all or nothing: the
    ciphertext goes to a temporary file beside it, then replaces it (an interrupted write
    loses no secret). `header` is a YAML comment kept inside the encrypted text."""
    clear = header + yaml.safe_dump(dict(data), sort_keys=True, allow_unicode=True)
    vault.parent.mkdir(parents=True, exist_ok=True)
    # ansible-vault refuses to write over a file: a private folder beside the vault, hidden
    # and ending in "~" so that Ansible never reads a leftover as variables.
    staging = Path(tempfile.mkdtemp(prefix=f".{vault.name}.", suffix="~", dir=vault.parent))
    partial = staging / vault.name
    try:
        _vault(
            [
                ansible_vault(),
                "encrypt",
                "--vault-password-file",
                str(password_file),
                "--output",
                str(partial),
                "-",
            ],
            what=f"writing the vault {vault}",
            input_text=clear,
        )
        partial.chmod(0o600)
        os.replace(partial, vault)
    finally:
        partial.unlink(missing_ok=True)
        staging.rmdir()
