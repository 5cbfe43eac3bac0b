"""How Ansible runs on a deployment: its environment, the vault password, templated values.

The vault password file comes, in this order, from the command line (the CLI's
`--vault-password-file` sets ANSIBLE_VAULT_PASSWORD_FILE, the variable Ansible itself
reads), from ANSIBLE_VAULT_PASSWORD_FILE, or from `vault_password_file` in an `ansible.cfg`
inside the inventory directory (Ansible never reads `.cfg` files there as inventory:
INVENTORY_IGNORE_EXTS). There is no other fallback: an inventory with encrypted files and
no password is an error that says what was tried.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from educloud.errors import EducloudError
from educloud.paths import ansible_dir, repo_root

VAULT_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"
INVENTORY_CONFIG = "ansible.cfg"  # beside the inventory's hosts file
_VAULT_HEADER = b"$ANSIBLE_VAULT;"


@dataclass(frozen=True)
class VaultPassword:
    path: Path | None
    source: str  # where the path came from, for error messages


def absolute(inventory: Path) -> Path:
    return inventory if inventory.is_absolute() else repo_root() / inventory


def inventory_dir(inventory: Path) -> Path:
    inventory = absolute(inventory)
    return inventory if inventory.is_dir() else inventory.parent


def encrypted_files(inventory: Path) -> list[Path]:
    """The inventory's files Ansible Vault encrypted (whole files; inline !vault values are
    found by Ansible, which then names them)."""
    found = []
    root = inventory_dir(inventory)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".yml", ".yaml", ""}:
            try:
                with path.open("rb") as handle:
                    if handle.read(len(_VAULT_HEADER)) == _VAULT_HEADER:
                        found.append(path)
            except OSError:
                continue
    return found


def vault_password(inventory: Path | None) -> VaultPassword:
    """The vault password file for `inventory`, and where it was found."""
    if os.environ.get(VAULT_ENV):
        return VaultPassword(Path(os.environ[VAULT_ENV]), VAULT_ENV)
    if inventory is not None:
        config = inventory_dir(inventory) / INVENTORY_CONFIG
        if config.is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(config, encoding="utf-8")
            except configparser.Error as exc:
                raise EducloudError(f"{config}: not an ansible.cfg ({exc})") from None
            value = parser.get("defaults", "vault_password_file", fallback="").strip()
            if value:
                path = Path(os.path.expanduser(value))
                return VaultPassword(
                    path if path.is_absolute() else config.parent / path,
                    f"vault_password_file in {config}",
                )
    return VaultPassword(None, "nothing")


def check_vault(inventory: Path) -> VaultPassword:
    """The inventory's vault password, checked before Ansible runs: a clear error instead of
    Ansible's bare "Decryption failed" or "no vault secrets found"."""
    found = vault_password(inventory)
    if found.path is not None and not found.path.is_file():
        raise EducloudError(
            f"vault password file {found.path} (from {found.source}) does not exist"
        )
    if found.path is None:
        encrypted = encrypted_files(inventory)
        if encrypted:
            names = ", ".join(str(p.relative_to(inventory_dir(inventory))) for p in encrypted[:3])
            raise EducloudError(
                f"inventory {absolute(inventory)} has encrypted files ({names}) and no vault "
                f"password was given: pass --vault-password-file, set {VAULT_ENV}, or write "
                f"vault_password_file under [defaults] in "
                f"{inventory_dir(inventory) / INVENTORY_CONFIG}"
            )
    return found


def ansible_env(inventory: Path | None = None) -> dict[str, str]:
    """The environment Ansible runs in for `inventory`: the project's ansible.cfg, this
    interpreter's tools first on PATH, the inventory's vault password file."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(ansible_dir() / "ansible.cfg")
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    if inventory is not None:
        found = check_vault(inventory)
        if found.path is not None:
            env[VAULT_ENV] = str(found.path)
    return env


def explain_failure(inventory: Path, stderr: str) -> str:
    """Ansible's last error line, with the vault password's source when decryption failed."""
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    if "Decryption failed" in stderr or "no vault secrets" in stderr:
        found = vault_password(inventory)
        last += (
            f" (vault password file: {found.path}, from {found.source})"
            if found.path
            else " (no vault password file was given)"
        )
    return last


def template(inventory: Path, host: str, expression: str) -> Any:
    """`expression` over `host`'s inventory variables, templated by Ansible itself (so a
    "{{ vault_x }}" value reads decrypted, in memory). The answer is captured, never printed
    nor logged; an error names the expression, never its value."""
    inventory = absolute(inventory)
    env = ansible_env(inventory)
    env["ANSIBLE_STDOUT_CALLBACK"] = "json"
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"  # ad-hoc commands ignore stdout_callback else
    argv = [
        str(Path(sys.executable).parent / "ansible"),
        host,
        "-i",
        str(inventory),
        "-m",
        "ansible.builtin.debug",
        "-a",
        f"msg={{{{ {expression} }}}}",
    ]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=ansible_dir(),
        check=False,
        stdin=subprocess.DEVNULL,
    )
    try:
        # The JSON document, after what other callbacks (profile_tasks) printed first.
        # The JSON document, between what profile_tasks prints before and after it.
        document, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
        answer = document["plays"][0]["tasks"][0]["hosts"][host]
    except (ValueError, KeyError, IndexError, TypeError):
        raise EducloudError(
            f"cannot template {expression!r} for {host} of {inventory}: "
            f"{explain_failure(inventory, result.stderr)}"
        ) from None
    if answer.get("failed"):
        raise EducloudError(
            f"cannot template {expression!r} for {host} of {inventory}: the expression is "
            "undefined or invalid there"
        )
    return answer.get("msg")
