"""Run one role's input checks (tasks/validate.yml) locally with the given variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from educloud.paths import repo_root

PLAYBOOK = Path(__file__).parent / "playbooks" / "role_validate.yml"


def validate_role(role: str, variables: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(PLAYBOOK),
            "-i",
            "localhost,",
            "-e",
            json.dumps({**variables, "educloud_role_under_test": role}),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "ANSIBLE_ROLES_PATH": str(repo_root() / "roles"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
        },
    )
