"""Checks made before the lab changes anything: root, and the tools it drives."""

from __future__ import annotations

import os
import shutil

from educloud.errors import EducloudError

# tool -> Debian package that provides it
REQUIRED_TOOLS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "nft": "nftables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}

TOOL_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def find_tool(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for directory in TOOL_DIRS:
        candidate = os.path.join(directory, tool)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_tools() -> dict[str, str]:
    return {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if find_tool(tool) is None}


def require_lab_prerequisites() -> None:
    """Raise a clear error, with the fix, when the lab cannot run here."""
    if os.geteuid() != 0:
        raise EducloudError(
            "the lab needs root (it creates network links and boots containers): "
            "run the command again as root, e.g. with sudo"
        )
    missing = missing_tools()
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise EducloudError(
            f"missing tools: {', '.join(sorted(missing))}; install them with: "
            f"apt-get install -y {packages}   (./run.sh deploy does this for you)"
        )
