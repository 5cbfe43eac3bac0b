"""`educloud export`: parse, call educloud.portability.export, print. No logic of its own.

educloud export --user ID [--user ID...] | --group GROUP | --all [--contract-end]
educloud export verify ARCHIVE...
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from educloud.cli.options import (
    DEFAULT_INVENTORY,
    InventoryOption,
    JsonOption,
    RealmOption,
    progress_bars,
)
from educloud.portability import export as lib
from educloud.portability.content import content_source

DEFAULT_OUTPUT = Path("/var/lib/educloud/exports")

export_app = typer.Typer(
    help="Portability (C8): export users' data as verifiable archives (docs/data-rights.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = Console()
err_console = Console(stderr=True)


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[lib.ExportProgress | None]:
    if not enabled:
        yield None
        return
    bar = progress_bars(err_console)
    task = bar.add_task("export", total=total)

    def update(event: lib.ExportEvent) -> None:
        bar.update(task, completed=event.done, description=f"export {event.user_id}")
        if event.outcome == "failed":
            bar.console.print(f"[red]failed[/red] {event.user_id}: {event.detail}", highlight=False)

    with bar:
        yield update


def _keycloak(inventory: Path, realm: str | None, stack: ExitStack) -> lib.KeycloakProfiles:
    """The realm through the data-rights service client, its names pinned to the proxy."""
    from educloud.deployment import keycloak

    profiles, _ = stack.enter_context(
        keycloak.connect(
            inventory, lib.KeycloakProfiles.connect, realm=realm, client=keycloak.DATA_RIGHTS
        )
    )
    return profiles


@export_app.callback()
def export_command(
    ctx: typer.Context,
    user: Annotated[
        list[str] | None, typer.Option("--user", help="This user id (repeatable).")
    ] = None,
    group: Annotated[str | None, typer.Option(help="Every member of this Keycloak group.")] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Every account of the realm.")] = False,
    contract_end: Annotated[
        bool,
        typer.Option(
            "--contract-end",
            help="End of contract: every account, into contract-end-<date>/ (kept 3 months).",
        ),
    ] = False,
    output: Annotated[Path, typer.Option(help="Where the archives are written.")] = DEFAULT_OUTPUT,
    inventory: InventoryOption = DEFAULT_INVENTORY,
    realm: RealmOption = None,
    nextcloud_url: Annotated[
        str | None, typer.Option(help="Nextcloud's base URL (default: from the inventory).")
    ] = None,
    app_passwords: Annotated[
        Path | None,
        typer.Option(
            help="JSON file user id -> app password: WebDAV with these, no SSH to the server."
        ),
    ] = None,
    webdav: Annotated[
        bool, typer.Option("--webdav", help="WebDAV even where user_migration is installed.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List who would be exported; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export users' data: files, calendars, contacts, profile, manifest with SHA-256.

    Rerun the same command after an interruption: finished users are not redone.
    """
    if ctx.invoked_subcommand is not None:
        return
    chosen = sum((bool(user), group is not None, all_users or contract_end))
    if chosen != 1:
        raise typer.BadParameter(
            "give exactly one of --user, --group, --all (--contract-end means --all)"
        )
    now = _now()
    with ExitStack() as stack:
        total: int | None
        if user:
            user_ids: Any = list(dict.fromkeys(user))
            total = len(user_ids)
        else:
            profiles = _keycloak(inventory, realm, stack)
            user_ids = profiles.group_user_ids(group) if group else profiles.all_user_ids()
            total = None if group else profiles.count()
        if dry_run:
            _print_pending(user_ids, output, contract_end, now, as_json)
            return
        if user:
            profiles = _keycloak(inventory, realm, stack)
        content = content_source(
            inventory, nextcloud_url=nextcloud_url, app_passwords=app_passwords, webdav_only=webdav
        )
        sources = lib.ExportSources(profiles, content)
        with _progress_bar(not as_json, total) as progress:
            run = lib.export_many(
                sources,
                user_ids,
                output,
                progress=progress,
                now=now,
                contract_end=contract_end,
                total=total,
            )
    _print_run(run, content.name, as_json)
    if run.failed:
        raise typer.Exit(1)


def _print_pending(
    user_ids: Any, output: Path, contract_end: bool, now: datetime, as_json: bool
) -> None:
    directory = lib.run_directory(output, contract_end=contract_end, now=now)
    states: dict[str, int] = {}
    rows = []
    for user_id, state in lib.pending_exports(user_ids, output, contract_end=contract_end, now=now):
        states[state] = states.get(state, 0) + 1
        if as_json:
            rows.append({"user_id": user_id, "state": state})
        else:
            console.print(f"{state:12} {user_id}", highlight=False)
    if as_json:
        print(json.dumps({"directory": str(directory), "dry_run": True, "users": rows}))
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "nobody"
    console.print(f"dry run, nothing written; into {directory}: {counts}", highlight=False)


def _print_run(run: lib.ExportRun, source: str, as_json: bool) -> None:
    summary = {
        "directory": str(run.directory),
        "kind": run.kind,
        "source": source,
        "exported": run.exported,
        "already_done": run.already_done,
        "redone_torn": run.redone_torn,
        "failed": run.failed,
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(
        f"{run.directory} ({run.kind}, via {source}): {run.exported} exported, "
        f"{run.already_done} already done, {run.redone_torn} resumed after an interruption, "
        f"{len(run.failed)} failed",
        highlight=False,
    )
    for user_id, reason in run.failed.items():
        err_console.print(f"[red]failed[/red] {user_id}: {reason}", highlight=False)
    if run.failed:
        err_console.print("run the same command again to retry the failed users")


@export_app.command("verify")
def verify_command(
    archives: Annotated[list[Path], typer.Argument(help="Export archives (.zip).")],
    as_json: JsonOption = False,
) -> None:
    """Check archives against their manifest (sizes and SHA-256). Exit 1 if any fails."""
    results = {str(archive): lib.verify_export(archive) for archive in archives}
    if as_json:
        print(json.dumps({"archives": results}, indent=2))
    else:
        for archive, problems in results.items():
            if not problems:
                console.print(f"[green]verified[/green] {archive}", highlight=False)
            for problem in problems:
                err_console.print(f"[red]failed[/red] {archive}: {problem}", highlight=False)
    if any(results.values()):
        sys.stdout.flush()
        raise typer.Exit(1)
