"""The backup agent that the backup role installs on servers, as a module for the controller.

The agent is one self-contained script (roles/backup/files/educloud_backup_agent.py, the
standard library and psycopg2 only) so that a server needs no educloud package; its tests
and benchmarks import it from there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from educloud.paths import repo_root

MODULE_NAME = "educloud_backup_agent"


def agent_path() -> Path:
    return repo_root() / "roles" / "backup" / "files" / f"{MODULE_NAME}.py"


def load() -> ModuleType:
    """The agent's module (loaded once per process)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, agent_path())
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the backup agent from {agent_path()}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
