"""Behaviour of the educloud_tool role on a converged host (testinfra; charter C7, C8): the
educloud tool in its virtual environment, installed from the controller's wheels.

Run by the retention role's molecule scenario and against an inventory (tests/run-all.sh:
the lab's edu1); conftest.py keeps them to the hosts of the group data_rights.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

VENV = "/opt/educloud/venv"


@pytest.mark.parametrize("command", ["retention apply", "export"])
def test_tool_runs_from_its_venv(host: Any, setting: Callable[[str, Any], Any], command: str):
    """The retention timer (C7) and the export tool (C8) run these two."""
    venv = setting("educloud_tool_venv", VENV)
    result = host.run(f"{venv}/bin/educloud {command} --help")
    assert result.rc == 0, result.stdout + result.stderr


def test_venv_records_the_wheelhouse_it_was_installed_from(
    host: Any, setting: Callable[[str, Any], Any]
):
    """A later deploy sends and installs nothing while this fingerprint is the controller's."""
    record = host.file(f"{setting('educloud_tool_venv', VENV)}/educloud-wheelhouse")
    assert (record.user, record.group, record.mode) == ("root", "root", 0o644)
    assert re.fullmatch(r"\S+\n", record.content_string), record.content_string


def test_no_wheels_left_on_the_host(host: Any, setting: Callable[[str, Any], Any]):
    wheelhouse = setting("educloud_tool_wheelhouse", "/opt/educloud/wheelhouse")
    assert not host.file(wheelhouse).exists
