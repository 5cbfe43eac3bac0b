"""`educloud accounts`: parse, call educloud.accounts, print. No logic of its own."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from educloud.accounts.keycloak_directory import ImportPath, KeycloakDirectory
from educloud.accounts.plan import ChangeKind
from educloud.accounts.sync import PlanReport
from educloud.cli.options import (
    DEFAULT_INVENTORY,
    InventoryOption,
    JsonOption,
    RealmOption,
    TodayOption,
    parse_date,
    phase_progress,
)

accounts_app = typer.Typer(
    no_args_is_help=True,
    help="Accounts from the academy's directory: plan, then apply (docs/accounts.md).",
)
console = Console()
err_console = Console(stderr=True)
SHOWN_CHANGES = 40  # rows of the table; --json has them all

FileArg = Annotated[Path, typer.Argument(help="The directory export (CSV or XML).")]
FormatOption = Annotated[
    str,
    typer.Option(
        "--format", help="Mapping: canonical, siecle-eleves, aaf-xml, or a mapping file (YAML)."
    ),
]
EncodingOption = Annotated[
    str | None, typer.Option(help="The file's encoding (utf-8, latin-1, cp1252); else detected.")
]
ClientOption = Annotated[
    str,
    typer.Option(
        envvar="EDUCLOUD_ACCOUNTS_CLIENT_ID",
        help="Service client: educloud-accounts (manage-users) or educloud-accounts-bulk "
        "(partial import, for large changes).",
    ),
]
YearOption = Annotated[
    int | None, typer.Option(help="School year, as its first calendar year (2026 = 2026-2027).")
]


@contextmanager
def _directory(
    inventory: Path, realm: str | None, no_server: bool, client_id: str = "educloud-accounts"
) -> Iterator[tuple[KeycloakDirectory | None, str]]:
    if no_server:
        yield None, ""
        return
    from educloud.deployment import keycloak

    client = keycloak.ServiceClient(client_id)
    with keycloak.connect(inventory, KeycloakDirectory.connect, realm=realm, client=client) as (
        directory,
        found,
    ):
        yield directory, found.login_url


def _print_plan(report: PlanReport, as_json: bool) -> None:
    from educloud.accounts.sync import write_plan_json

    if as_json:
        write_plan_json(report, sys.stdout)
        return
    console.print(
        f"{report.file}: {len(report.accounts)} valid accounts; encoding {report.encoding} "
        f"({report.encoding_reason}); planned against {report.against}",
        highlight=False,
    )
    for problem in report.problems:
        err_console.print(f"[red]{problem}[/red]", highlight=False)
    if report.plan is None:
        return
    counts = Table(
        title=f"Plan, school year {report.plan.school_year}-{report.plan.school_year + 1}"
    )
    counts.add_column("change")
    counts.add_column("count", justify="right")
    for kind, number in report.plan.counts().items():
        counts.add_row(str(kind), str(number))
    console.print(counts)
    changes = Table(title=f"Changes (first {SHOWN_CHANGES}; --json for all)")
    for column in ("change", "target", "detail"):
        changes.add_column(column)
    for change in report.plan.changes[:SHOWN_CHANGES]:
        changes.add_row(str(change.kind), change.target, change.describe())
    if report.plan.changes:
        console.print(changes)
    console.print(f"import path: {report.path}", highlight=False)


@accounts_app.command("plan")
def plan_command(
    file: FileArg,
    file_format: FormatOption = "canonical",
    encoding: EncodingOption = None,
    inventory: InventoryOption = DEFAULT_INVENTORY,
    realm: RealmOption = None,
    no_server: bool = typer.Option(
        False, "--no-server", help="Plan against an empty directory (validation only)."
    ),
    today: TodayOption = None,
    year: YearOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate the whole file, then print what apply would change. Changes nothing."""
    from educloud.accounts.policy import load_policy
    from educloud.accounts.sync import make_plan

    policy = load_policy()
    with (
        _directory(inventory, realm, no_server) as (directory, _login),
        phase_progress(not as_json, err_console) as progress,
    ):
        report = make_plan(
            file,
            mapping=file_format,
            encoding=encoding,
            policy=policy,
            directory=directory,
            today=parse_date(today),
            year=year,
            progress=progress,
        )
    _print_plan(report, as_json)
    if not report.valid:
        err_console.print(f"{len(report.problems)} problem(s): fix the file; nothing is applied")
        raise typer.Exit(1)


@accounts_app.command("apply")
def apply_command(
    file: FileArg,
    file_format: FormatOption = "canonical",
    encoding: EncodingOption = None,
    inventory: InventoryOption = DEFAULT_INVENTORY,
    realm: RealmOption = None,
    client_id: ClientOption = "educloud-accounts",
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Credential journal and sheets (default /var/lib/educloud/accounts)."),
    ] = None,
    path: Annotated[
        ImportPath | None, typer.Option(help="Force an import path (default: by size).")
    ] = None,
    login_url: Annotated[str | None, typer.Option(help="URL printed on the sheets.")] = None,
    pdf: bool = typer.Option(False, "--pdf", help="Also print the sheets to PDF (chromium)."),
    nextcloud_url: Annotated[
        str | None,
        typer.Option(
            help="Nextcloud for the class folders (user and app password from "
            "EDUCLOUD_NEXTCLOUD_USER / EDUCLOUD_NEXTCLOUD_PASSWORD)."
        ),
    ] = None,
    today: TodayOption = None,
    year: YearOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the file: groups, accounts, departures, sheets. Idempotent; rerun to resume."""
    from educloud.accounts.policy import load_policy
    from educloud.accounts.sync import InvalidFileError, apply_file, default_state_dir

    policy = load_policy()
    nextcloud = None
    if nextcloud_url:
        from educloud.clients.nextcloud import client_from_env

        nextcloud = client_from_env(nextcloud_url)
    with (
        _directory(inventory, realm, False, client_id) as (directory, default_login),
        phase_progress(not as_json, err_console) as progress,
    ):
        assert directory is not None
        try:
            applied = apply_file(
                file,
                mapping=file_format,
                encoding=encoding,
                policy=policy,
                directory=directory,
                state_dir=state_dir or default_state_dir(),
                login_url=login_url or default_login,
                today=parse_date(today),
                year=year,
                path=path,
                pdf=pdf,
                nextcloud=nextcloud,
                progress=progress,
                after_plan=None if as_json else lambda report: _print_plan(report, False),
            )
        except InvalidFileError as invalid:
            for problem in invalid.problems:
                err_console.print(f"[red]{problem}[/red]", highlight=False)
            err_console.print(str(invalid), highlight=False)
            raise typer.Exit(1) from None
    summary = {
        "applied": {str(k): n for k, n in applied.result.applied.items()},
        "path": str(path or applied.plan.path),
        "sheets": [str(p) for p in applied.sheets],
        "resumed_passwords": applied.resumed_passwords,
        "notices": applied.notices,
        "class_folders": None
        if applied.folders is None
        else [f"{f.action} {f.group}" for f in applied.folders],
    }
    if as_json:
        from educloud.accounts.sync import write_plan_json

        write_plan_json(applied.plan, sys.stdout, **summary)
        return
    done = ", ".join(f"{n} {k}" for k, n in summary["applied"].items()) or "nothing to do"  # type: ignore[attr-defined]
    for notice in applied.notices:
        err_console.print(f"note: {notice}", highlight=False)
    console.print(f"applied: {done}", highlight=False)
    if applied.sheets:
        console.print(f"credential sheets ({len(applied.sheets)} files, keep them private):")
        for sheet in applied.sheets:
            console.print(f"  {sheet}", highlight=False)
    if applied.folders is None:
        console.print("class folders: no Nextcloud given (--nextcloud-url)", highlight=False)
    else:
        console.print(f"class folders: {len(applied.folders)} changes", highlight=False)
    due = applied.plan.plan.counts()[ChangeKind.DUE_FOR_DELETION] if applied.plan.plan else 0
    if due:
        console.print(f"{due} departed accounts are due for export and deletion", highlight=False)
