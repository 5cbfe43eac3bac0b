"""`educloud retention`: what retention.yml makes due, doing it, and checking the journal.

Parses and prints; the work is in educloud.retention.rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from educloud.cli.options import (
    DEFAULT_INVENTORY,
    InventoryOption,
    JsonOption,
    RealmOption,
    TodayOption,
    parse_date,
)
from educloud.errors import EducloudError

retention_app = typer.Typer(
    no_args_is_help=True,
    help="Retention (C7): list what the policy makes due, erase or archive it, journal it.",
)
journal_app = typer.Typer(no_args_is_help=True, help="The hash-chained retention journal.")
retention_app.add_typer(journal_app, name="journal")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (the retention role's /etc/educloud/retention.yml); "
        "replaces --inventory.",
    ),
]
ExportsOption = Annotated[
    Path | None, typer.Option(help="Export directory (default: the settings' or /var/lib).")
]
JournalOption = Annotated[Path | None, typer.Option(help="Journal file (default: settings').")]
NextcloudOption = Annotated[
    str | None,
    typer.Option(
        help="Nextcloud's URL (operator mode): departed accounts are erased there too, "
        "their files exported first through occ on the inventory's nextcloud host; admin "
        "user and app password from EDUCLOUD_NEXTCLOUD_USER / EDUCLOUD_NEXTCLOUD_PASSWORD."
    ),
]


@dataclass(frozen=True)
class _Where:
    """The arguments of educloud.retention.settings.resolve, as the command line gives them."""

    inventory: Path
    config: Path | None
    exports_dir: Path | None
    journal: Path | None
    realm: str | None
    nextcloud_url: str | None = None


@contextmanager
def _opened(where: _Where) -> Iterator[tuple[Any, Any, Any]]:
    from educloud import policy
    from educloud.retention import settings
    from educloud.retention.connect import open_stores
    from educloud.retention.rules import rules_from_policy

    found = settings.resolve(**vars(where))
    rules = rules_from_policy(policy.load(found.policies_dir).retention)
    with open_stores(found) as stores:
        yield found, rules, stores


def _plan_document(plan: Any) -> dict[str, Any]:
    return {
        "today": plan.today.isoformat(),
        "due": [
            {
                "category": item.category,
                "subject": item.subject,
                "due_on": item.due_on.isoformat(),
                "action": str(item.action),
                "detail": item.detail,
                "count": max(item.count, 1),
            }
            for item in plan.due
        ],
        "waiting_accounts": plan.waiting,
        "enforced_elsewhere": [
            {
                "category": e.category,
                "enforced_by": e.enforced_by,
                "status": e.status,
                "ok": e.ok,
            }
            for e in plan.enforced
        ],
    }


def _print_plan(plan: Any, limit: int) -> None:
    console.print(f"Retention plan for {plan.today} (policies/retention.yml)")
    if plan.due:
        table = Table(title=f"Due: {len(plan.due)} items")
        for column in ("category", "subject", "due on", "action", "detail"):
            table.add_column(column)
        for item in plan.due[:limit]:
            table.add_row(
                item.category, item.subject, str(item.due_on), str(item.action), item.detail
            )
        console.print(table)
        if len(plan.due) > limit:
            console.print(f"… and {len(plan.due) - limit} more (--limit, or --json for all)")
    else:
        console.print("Due: nothing")
    console.print(f"Departed accounts still in their grace period: {plan.waiting}")
    enforced = Table(title="Enforced by other components")
    for column in ("category", "by", "state"):
        enforced.add_column(column)
    marks = {True: "[green]ok[/green]", False: "[red]NOT OK[/red]", None: "not checked here"}
    for item in plan.enforced:
        enforced.add_row(item.category, item.enforced_by, f"{marks[item.ok]}: {item.status}")
    console.print(enforced)


@retention_app.command("plan")
def plan_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    config: ConfigOption = None,
    exports_dir: ExportsOption = None,
    journal: JournalOption = None,
    realm: RealmOption = None,
    nextcloud_url: NextcloudOption = None,
    today: TodayOption = None,
    limit: Annotated[int, typer.Option(help="Rows of the due table.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List what is due (read-only). Exit 0 even when something is due."""
    from educloud.retention.rules import plan

    with _opened(_Where(inventory, config, exports_dir, journal, realm, nextcloud_url)) as (
        _s,
        rules,
        stores,
    ):
        found = plan(rules, stores, parse_date(today))
    if as_json:
        print(json.dumps(_plan_document(found), ensure_ascii=False, indent=2))
    else:
        _print_plan(found, limit)


@retention_app.command("apply")
def apply_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    config: ConfigOption = None,
    exports_dir: ExportsOption = None,
    journal: JournalOption = None,
    realm: RealmOption = None,
    nextcloud_url: NextcloudOption = None,
    today: TodayOption = None,
    limit: Annotated[int, typer.Option(help="Rows of the due table.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Print the plan, then erase or archive what is due; every action is journaled.

    Exit 1 when an item failed (for example an export that does not verify: the account
    is kept). Rerun to resume: it starts again from what the stores hold.
    """
    from educloud.retention.rules import apply, plan

    when = parse_date(today)
    with _opened(_Where(inventory, config, exports_dir, journal, realm, nextcloud_url)) as (
        found,
        rules,
        stores,
    ):
        before = plan(rules, stores, when)
        if not as_json:
            _print_plan(before, limit)

        def show(outcome: Any) -> None:
            if not as_json:
                mark = "done" if outcome.done else "[red]FAILED[/red]"
                console.print(
                    f"{mark} {outcome.item.category} {outcome.item.subject}: {outcome.message}"
                )

        _, result = apply(rules, stores, when, progress=show)
    if as_json:
        document = _plan_document(before)
        document["outcomes"] = [
            {
                "category": o.item.category,
                "subject": o.item.subject,
                "done": o.done,
                "message": o.message,
            }
            for o in result.outcomes
        ]
        document["recovered"] = result.recovered
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        for username in result.recovered:
            console.print(f"recorded the erasure of {username} (interrupted run)")
        done = len(result.outcomes) - len(result.failed)
        console.print(f"applied: {done} done, {len(result.failed)} failed; journal {found.journal}")
    if result.failed:
        raise typer.Exit(1)


@journal_app.command("verify")
def journal_verify(
    journal: Annotated[Path | None, typer.Argument(help="The journal file.")] = None,
    config: ConfigOption = None,
) -> None:
    """Check the hash chain: exit 1 and list the lines when an entry was edited,
    removed, inserted or moved."""
    from educloud.retention import journal as chain
    from educloud.retention.settings import journal_path

    path = journal_path(journal, config)
    if not path.exists() and chain.read_head(path) is None:
        raise EducloudError(f"{path}: no journal here (nothing applied yet, or a wrong path)")
    problems = chain.verify(path)
    if problems:
        for problem in problems:
            err_console.print(f"[red]{path}: {problem}[/red]")
        raise typer.Exit(1)
    count = sum(1 for _ in chain.entries(path))
    console.print(f"{path}: {count} entries, chain intact")
