"""Run one role's input checks (tasks/validate.yml), or render one of its templates, locally."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from educloud.paths import repo_root

PLAYBOOKS = Path(__file__).parent / "playbooks"
# localhost as a single server: in the groups nextcloud and redis, redis_mode local.
SINGLE_SERVER = Path(__file__).parent / "data" / "single-server.yml"


def validate_role(
    role: str, variables: dict[str, object], inventory: str | Path = "localhost,"
) -> subprocess.CompletedProcess[str]:
    """The role's tasks/validate.yml on this machine, for `inventory` (localhost alone, in no
    group, by default)."""
    return run_playbook(
        PLAYBOOKS / "role_validate.yml",
        str(inventory),
        {**variables, "educloud_role_under_test": role},
    )


def render_role_template(
    role: str, template: str, destination: Path, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """Render roles/ROLE/templates/TEMPLATE to DESTINATION with the role's defaults and policies."""
    return _playbook(
        "render_template.yml",
        {
            **variables,
            "educloud_role_under_test": role,
            "educloud_template": template,
            "educloud_render_to": str(destination),
        },
    )


def _playbook(name: str, extra_vars: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return run_playbook(PLAYBOOKS / name, "localhost,", extra_vars)


def run_playbook(
    playbook: Path, inventory: str, extra_vars: dict[str, object], *, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on this machine with the repository's roles (in check mode with
    `check`); never raises on failure."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(playbook),
            *(["--check"] if check else []),
            "-i",
            inventory,
            "-e",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            "ANSIBLE_ROLES_PATH": str(repo_root() / "roles"),
            "ANSIBLE_FILTER_PLUGINS": str(repo_root() / "ansible" / "filter_plugins"),
            # The filter plugin imports educloud: this checkout's, not whichever is installed.
            "PYTHONPATH": str(repo_root() / "python_tools"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        },
    )
