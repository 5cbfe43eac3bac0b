"""Where the parts of a deployment's folder are.

DIR/
  README.md             for the operator, in French: what each file is, what comes next
  educloud-init.yml     the answers (no secret): `educloud init DIR` again reuses them
  vault-password        the vault's password (0600): never in the inventory
  inventory/            the Ansible inventory (hosts.yml, group_vars/, ansible.cfg)
  policies/             the deployment's copy of policies/, outside the inventory so
                        that Ansible never reads it as inventory
  internal-ca/          (--certificates internal) the CA's key and certificate
  internal-ca.crt       ... its certificate, for browsers and `educloud verify`
  certificates/         (--certificates files) your certificates and keys
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INVENTORY = "inventory"
POLICIES = "policies"
PASSWORD = "vault-password"  # noqa: S105 - a file name, not a password
ANSWERS = "educloud-init.yml"
README = "README.md"
VAULT = f"{INVENTORY}/group_vars/all/vault.yml"
ANSIBLE_CFG = f"{INVENTORY}/ansible.cfg"
CA_DIR = "internal-ca"
CA_EXPORT = "internal-ca.crt"
CERTIFICATES = "certificates"


@dataclass(frozen=True)
class Places:
    """The paths the inventory names, as written into it: absolute for a folder that
    `educloud init` writes; the committed examples give their own."""

    policies: str
    root: str

    @classmethod
    def of(cls, directory: Path) -> Places:
        root = directory.resolve()
        return cls(policies=str(root / POLICIES), root=str(root))

    def under_root(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"
