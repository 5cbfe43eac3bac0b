"""The options the command groups share (educloud.cli.options), and the CLI modules using
the library's pieces instead of copies of their own."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from educloud.cli import options
from educloud.cli.main import app


def test_a_date_is_parsed_and_defaults_to_today() -> None:
    assert options.parse_date("2026-09-01") == date(2026, 9, 1)
    assert options.parse_date(None) == date.today()


@pytest.mark.parametrize("value", ["2026-13-01", "01/09/2026", "", "tomorrow"])
def test_a_bad_date_is_a_usage_error(value: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a date"):
        options.parse_date(value)


def test_phase_progress_is_none_when_disabled_and_one_bar_per_phase_else() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with options.phase_progress(False, console) as none:
        assert none is None
    with options.phase_progress(True, console) as update:
        assert update is not None
        update("read groups", 1, 4)
        update("read groups", 4, 4)
        update("create", 2, 2)
    assert "create" in console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "plan"],
        ["accounts", "apply"],
        ["stats"],
        ["docs"],
        ["export"],
        ["retention", "plan"],
        ["retention", "apply"],
        ["backup", "run"],
        ["deploy"],
        ["summary"],
        ["verify"],
    ],
    ids=" ".join,
)
def test_every_command_on_an_inventory_takes_the_shared_option(command: list[str]) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    # Rich styles the help (CI forces colours): read the text without its escapes.
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.output)

    assert shown.exit_code == 0, text
    assert "--inventory" in text and "-i " in text
    assert "inventories/lab" in text


def test_accounts_plan_refuses_a_bad_date(tmp_path: Path) -> None:
    file = tmp_path / "annuaire.csv"
    file.write_text("")

    done = CliRunner().invoke(
        app, ["accounts", "plan", str(file), "--no-server", "--today", "2026-02-30"]
    )

    assert done.exit_code == 2
    assert "is not a date" in done.output


def test_moderation_takedown_needs_nextclouds_app_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDUCLOUD_MODERATION_TOKEN", "a-token")
    monkeypatch.delenv("EDUCLOUD_NEXTCLOUD_PASSWORD", raising=False)
    command = ["moderation", "takedown", "SIG-ABC123", "--url", "https://127.0.0.1:9/api"]

    done = CliRunner().invoke(app, [*command, "--nextcloud-url", "https://127.0.0.1:9"])

    assert done.exit_code == 2
    assert "EDUCLOUD_NEXTCLOUD_PASSWORD" in done.output


def _command_paths(command: object, path: list[str]) -> list[list[str]]:
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _command_paths(sub, [*path, name])
    return paths


@pytest.mark.parametrize(
    "command", _command_paths(typer.main.get_command(app), []), ids=lambda p: " ".join(p) or "-"
)
def test_every_commands_help_is_shown(command: list[str]) -> None:
    # Rich reads help texts as markup: a bracket in one ("[/PREFIX]") crashed `init --help`.
    shown = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.output)

    assert shown.exit_code == 0, f"{shown.exception!r} {text}"
    assert "Usage:" in text
