"""The lab refuses to start, with the fix, when it cannot run here."""

from __future__ import annotations

import pytest

from educloud.errors import EducloudError
from educloud.lab import preflight


def test_not_root_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(EducloudError, match="needs root"):
        preflight.require_lab_prerequisites()


def test_missing_tool_names_the_package(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        preflight, "find_tool", lambda tool: None if tool == "debootstrap" else "/usr/bin/x"
    )
    with pytest.raises(EducloudError, match="apt-get install -y debootstrap"):
        preflight.require_lab_prerequisites()
