"""The backup agent that the backup role installs on servers, as a module for the controller.

The agent is one self-contained script (roles/backup/files/educloud_backup_agent.py, the
standard library and psycopg2 only) so that a server needs no educloud package; its tests
and benchmarks import it from there.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from educloud import hostscripts

MODULE_NAME = "educloud_backup_agent"


def agent_path() -> Path:
    return hostscripts.path("backup", MODULE_NAME)


def load() -> ModuleType:
    """The agent's module (loaded once per process)."""
    return hostscripts.load("backup", MODULE_NAME)
