"""The lab's secrets: generated once, kept in an Ansible Vault file, never printed.

Real deployments keep their own vault; the lab makes one so that the roles run exactly
as in production (every secret from Vault, no_log on every task that touches one).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from educloud.commands import run
from educloud.lab.inventory import inventory_dir
from educloud.lab.settings import VARIANTS, LabPaths

# Every secret the lab's inventory refers to, as vault_* variables.
LAB_SECRETS = (
    "vault_keycloak_admin_password",
    # Master's automation client (client credentials): Ansible, the tests and the tools.
    "vault_keycloak_automation_client_secret",
    "vault_keycloak_db_password",
    "vault_lab_test_user_password",
    "vault_lab_realm_admin_password",
    "vault_nextcloud_oidc_client_secret",
    "vault_nextcloud_db_password",
    "vault_nextcloud_admin_password",
    "vault_redis_password",
    "vault_accounts_client_secret",
    "vault_accounts_bulk_client_secret",
    "vault_data_rights_client_secret",
    "vault_reports_db_password",
    "vault_reports_form_secret",
    "vault_reports_moderation_token",
    "vault_backup_repository_password",
    # The regional topology (issue #9): Patroni's PostgreSQL superuser, replication user and
    # REST API, and keepalived's VRRP password (an example inventory's floating address).
    "vault_patroni_superuser_password",
    "vault_patroni_replication_password",
    "vault_patroni_rest_password",
    "vault_vrrp_password",
)
# Secrets that are not passwords, with what makes each: the backup client's SSH key pair
# (the lab's backup target authorizes the public half; a drill host restores with it).
LAB_KEYPAIRS = (("vault_backup_ssh_private_key", "vault_backup_ssh_public_key"),)


def _ssh_keypair(comment: str) -> tuple[str, str]:
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


def vault_link(variant: str = "single") -> Path:
    """Where a lab inventory reads the vault: a link to the lab's own copy."""
    return inventory_dir(variant) / "group_vars" / "all" / "vault.yml"


def vault_store(paths: LabPaths) -> Path:
    # The secrets belong to the lab (the machine), not to a checkout: every clone that
    # drives this lab links to the same vault, so they agree on the deployed passwords.
    return paths.root / "vault.yml"


def _link_inventory(paths: LabPaths) -> None:
    """Every lab topology's inventory reads the one vault (the regional one when present)."""
    target = vault_store(paths)
    for variant in VARIANTS:
        link = vault_link(variant)
        if variant != "single" and not inventory_dir(variant).is_dir():
            continue
        if link.is_symlink() and link.readlink() == target:
            continue
        if link.exists() or link.is_symlink():
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


def password_file(paths: LabPaths) -> Path:
    return paths.root / "vault-password"


def _ansible_vault() -> str:
    return str(Path(sys.executable).parent / "ansible-vault")


def read(paths: LabPaths) -> dict[str, str]:
    """The lab's secrets (for the lab's own tests; never printed)."""
    store = vault_store(paths)
    if not store.exists():
        return {}
    clear = run(
        [_ansible_vault(), "view", "--vault-password-file", str(password_file(paths)), str(store)],
        what="reading the lab vault (delete it and the lab's vault-password to start afresh)",
    ).stdout
    data = yaml.safe_load(clear) or {}
    return {str(k): str(v) for k, v in data.items()}


def ensure(paths: LabPaths) -> list[str]:
    """Create missing lab secrets (idempotent); returns the names created, never values."""
    pw_file = password_file(paths)
    if not pw_file.exists():
        # A vault encrypted with a password that no longer exists cannot be read.
        vault_store(paths).unlink(missing_ok=True)
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    link = vault_link()
    if link.is_file() and not link.is_symlink() and not vault_store(paths).exists():
        os.replace(link, vault_store(paths))  # a vault from before the lab kept its own
    current = read(paths)
    missing = [name for name in LAB_SECRETS if name not in current]
    missing_pairs = [pair for pair in LAB_KEYPAIRS if not all(n in current for n in pair)]
    _link_inventory(paths)
    if not missing and not missing_pairs:
        return []
    for name in missing:
        # Letters, digits and symbols so that every password policy of the lab accepts them.
        current[name] = secrets.token_urlsafe(24) + "aA1!"
    for private_name, public_name in missing_pairs:
        current[private_name], current[public_name] = _ssh_keypair("educloud-backup@lab")
        missing.extend((private_name, public_name))
    clear = "# lab secrets, generated by 'educloud lab up'\n" + yaml.safe_dump(current)
    store = vault_store(paths)
    partial = store.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run(
        [
            _ansible_vault(),
            "encrypt",
            "--vault-password-file",
            str(pw_file),
            "--output",
            str(partial),
            "-",
        ],
        what="writing the lab vault",
        input_text=clear,
    )
    partial.chmod(0o600)
    os.replace(partial, store)  # all or nothing: an interrupted write loses no secret
    return missing
