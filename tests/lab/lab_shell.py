"""A command on a lab host, through `educloud lab ssh` (the lab's own key and known hosts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def lab_ssh(host: str, command: str) -> str:
    """Run `command` on the lab host `host`; its standard output (failure raises)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), "lab", "ssh", host, "--", command],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout
