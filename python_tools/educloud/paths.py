"""Where the repository's parts are, found from this package's location or the environment."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package runs from (EDUCLOUD_REPO overrides it)."""
    override = os.environ.get("EDUCLOUD_REPO")
    if override:
        return Path(override).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "ansible" / "site.yml").is_file() and (parent / "roles").is_dir():
            return parent
    # Installed outside a checkout: fall back to the working directory.
    return Path.cwd()


def ansible_dir() -> Path:
    return repo_root() / "ansible"


def inventories_dir() -> Path:
    return repo_root() / "inventories"


def policies_dir() -> Path:
    return repo_root() / "policies"
