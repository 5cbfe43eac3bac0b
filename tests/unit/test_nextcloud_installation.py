"""When a missing Nextcloud is a reason to skip its checks, and when it is a failure (#24).

Only an inventory without a release archive, on a host with neither occ nor config.php,
skips; everything half there fails, saying what (educloud.charter.nextcloud)."""

from __future__ import annotations

from typing import Any

import pytest

from educloud.charter.nextcloud import installation_problem, occ_exit_problem

INSTALLED = {"installed": True, "version": "34.0.1.2", "maintenance": False}


def _state(**given: Any) -> tuple[bool, str | None]:
    state: dict[str, Any] = {
        "archive_given": True,
        "occ_present": True,
        "config_present": True,
        "status_exit": 0,
        "status": INSTALLED,
    }
    state.update(given)
    return installation_problem(**state)


def test_installed_and_answering_is_checked() -> None:
    assert _state() == (True, None)


def test_installed_without_an_archive_in_the_inventory_is_still_checked() -> None:
    """An install from an earlier deploy (or by hand) is checked, never skipped."""
    assert _state(archive_given=False) == (True, None)


def test_no_archive_and_nothing_there_skips() -> None:
    assert _state(
        archive_given=False, occ_present=False, config_present=False, status_exit=None
    ) == (False, None)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"occ_present": False, "config_present": False, "status_exit": None}, "release archive"),
        ({"config_present": False, "status_exit": None}, "occ is there but config/config.php"),
        ({"occ_present": False, "status_exit": None}, "config/config.php is there but occ"),
        ({"archive_given": False, "config_present": False}, "occ is there but"),
        ({"status_exit": 1, "status": None}, "occ status failed (exit 1)"),
        ({"status_exit": 255, "status": INSTALLED}, "exit 255"),
        ({"status": {"installed": False}}, "not installed"),
        ({"archive_given": False, "status": {"installed": False}}, "not installed"),
    ],
    ids=[
        "archive given, nothing there",
        "occ without config.php",
        "config.php without occ",
        "no archive, occ without config.php",
        "occ status fails",
        "occ status exits non-zero with an answer",
        "occ status says not installed",
        "no archive, occ status says not installed",
    ],
)
def test_anything_half_there_fails(given: dict[str, Any], said: str) -> None:
    installed, problem = _state(**given)
    assert not installed
    assert problem is not None and said in problem


@pytest.mark.parametrize(
    ("args", "exit_code", "stdout", "problem"),
    [
        (["status", "--output=json"], 0, "{}", None),
        (["status", "--output=json"], 1, "", "occ status --output=json exited 1"),
        (["config:system:get", "unset"], 1, "", None),
        (["config:system:get", "key"], 1, "An unhandled exception", "exited 1 with output"),
        (["config:system:get", "key"], 255, "", "exited 255"),
        (["setupchecks", "--output=json"], 1, "{}", None),
        (["app:list", "--output=json"], 1, "{}", "occ app:list --output=json exited 1"),
    ],
)
def test_occ_exit_codes_are_answers_or_failures(
    args: list[str], exit_code: int, stdout: str, problem: str | None
) -> None:
    found = occ_exit_problem(args, exit_code, stdout)
    assert found is None if problem is None else (found is not None and problem in found)
