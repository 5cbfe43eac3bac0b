"""A command on a lab host, through `educloud lab ssh` (the lab's own key and known hosts),
and a playbook of tests/lab/playbooks on one lab host, through the lab's inventory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from educloud.deployment.ansible import ansible_env
from educloud.paths import inventories_dir


def lab_ssh(host: str, command: str) -> str:
    """Run `command` on the lab host `host`; its standard output (failure raises)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "educloud"), "lab", "ssh", host, "--", command],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


def lab_playbook(
    playbook: Path, host: str, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook `playbook` on the lab host `host` with `variables` as extra vars
    (the lab's inventory and vault, as `educloud deploy` runs them); never raises."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(playbook),
            "-i",
            str(inventories_dir() / "lab"),
            "--limit",
            host,
            "-e",
            json.dumps(variables),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=ansible_env(inventories_dir() / "lab"),
        stdin=subprocess.DEVNULL,
    )
