"""The options the command groups share, defined once: the inventory, the realm, the date a
plan is made for, JSON output, and the progress bars on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

DEFAULT_INVENTORY = Path("inventories/lab")

InventoryOption = Annotated[
    Path,
    typer.Option("--inventory", "-i", help="The deployment's Ansible inventory."),
]
RealmOption = Annotated[str | None, typer.Option(help="Realm (default: the inventory's first).")]
TodayOption = Annotated[
    str | None, typer.Option(help="Plan as of this date (YYYY-MM-DD; default: today).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

PhaseProgress = Callable[[str, int, int], None]  # (phase, done, total)


def parse_date(value: str | None) -> date:
    """The date of --today: today when not given; a bad date is a usage error."""
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def progress_bars(console: Console) -> Progress:
    """Bars with their description, count and elapsed time, printed on `console`."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@contextmanager
def phase_progress(enabled: bool, console: Console) -> Iterator[PhaseProgress | None]:
    """A bar per phase the library reports (None when disabled, for JSON output)."""
    if not enabled:
        yield None
        return
    bars = progress_bars(console)
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update
