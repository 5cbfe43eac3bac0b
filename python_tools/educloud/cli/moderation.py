"""`educloud moderation`: the illicit-content reports (C9). Parses, calls
educloud.reporting.moderation, prints.

The moderation API's token comes from EDUCLOUD_MODERATION_TOKEN or
EDUCLOUD_MODERATION_TOKEN_FILE, never from the command line (it would show in `ps` and in
the shell's history); Nextcloud's account from EDUCLOUD_NEXTCLOUD_USER and
EDUCLOUD_NEXTCLOUD_PASSWORD (an app password), as for `educloud accounts apply`. With
--inventory, a takedown of another account's link acts as its owner through occ on the
inventory's Nextcloud host (over SSH, as `educloud export` does).

What a report holds comes from anyone: it is printed as data, never as Rich markup
(Text objects, markup off), with control and format characters written as their escapes
(moderation.for_terminal), in the table, the details, the one-line results, the errors
and the JSON alike.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from educloud.cli.options import JsonOption
from educloud.errors import EducloudError
from educloud.reporting import moderation as lib

moderation_app = typer.Typer(
    no_args_is_help=True,
    help="Illicit-content reports (charter C9): list, read, take down, dismiss.",
)
console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def _errors_as_data(command: Callable[P, R]) -> Callable[P, R]:
    """A failure is one line on stderr and exit status 2, as elsewhere in educloud, but its
    message (which may quote a report's link) is printed as text, never as markup."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except EducloudError as exc:
            line = Text("error:", style="bold red")
            line.append(" " + lib.for_terminal(str(exc)))
            err_console.print(line, highlight=False)
            raise typer.Exit(2) from exc

    return run


UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar=lib.URL_ENV,
        help="The moderation API: https://<admin vhost>/moderation/api (only reachable from "
        "the administrators' networks).",
    ),
]
CaOption = Annotated[
    str | None,
    typer.Option("--ca", envvar=lib.CA_ENV, help="CA bundle of the deployment (the lab's CA)."),
]
ReportArg = Annotated[str, typer.Argument(help="The report's reference (SIG-XXXXXX).")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: your login name).")
]
NoteOption = Annotated[str, typer.Option("--note", help="Why: recorded with the decision.")]
ReopenOption = Annotated[
    bool, typer.Option("--reopen", help="Revise the decision of a closed report (recorded).")
]


def _client(url: str, ca: str | None) -> lib.ModerationClient:
    return lib.ModerationClient(url, lib.token_from_env(), verify=ca or True)


def _nextcloud_verify() -> bool | str:
    """Nextcloud's CA bundle (EDUCLOUD_NEXTCLOUD_CA), else the system's trust store."""
    from educloud.clients.nextcloud import CA_ENV

    return os.environ.get(CA_ENV) or True


def _owners(inventory: Path | None, url: str) -> lib.OwnerAccess | None:
    if inventory is None:
        return None
    from educloud.clients.nextcloud.occ import SshOcc

    runner, _ = SshOcc.from_inventory(inventory)
    return lib.OccOwnerAccess(runner, url, verify=_nextcloud_verify())


def _as_json(value: Any) -> str:
    data = asdict(value) if hasattr(value, "__dataclass_fields__") else value
    return lib.json_for_terminal(data)


def _say(line: str) -> None:
    console.print(Text(lib.for_terminal(line)), highlight=False)


@moderation_app.command("list")
@_errors_as_data
def list_command(
    url: UrlOption,
    status: Annotated[
        str, typer.Option(help="open, taken_down, dismissed, archived or all.")
    ] = "open",
    ca: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """The reports, newest first (default: those waiting for a decision)."""
    reports = _client(url, ca).list_reports(status)
    if as_json:
        print(_as_json([asdict(r) for r in reports]))
        return
    table = Table(title=Text(f"reports ({status}): {len(reports)}"))
    for column in ("reference", "received", "kind", "status", "mail", "link"):
        table.add_column(column, no_wrap=column != "link", overflow="fold")
    for report in reports:
        cells = (
            report.id,
            f"{report.created_at:%Y-%m-%d %H:%M}",
            report.content_kind,
            report.status + (" (archived)" if report.archived_at else ""),
            "pending" if report.notify_pending else "sent",
            report.link or "-",
        )
        table.add_row(*(Text(lib.for_terminal(cell)) for cell in cells))
    console.print(table, highlight=False)


@moderation_app.command("show")
@_errors_as_data
def show_command(
    report: ReportArg, url: UrlOption, ca: CaOption = None, as_json: JsonOption = False
) -> None:
    """One report: what was reported, and every decision taken on it."""
    found = _client(url, ca).get_report(report)
    if as_json:
        print(_as_json(found))
        return
    archived = f", archived {found.archived_at:%Y-%m-%d}" if found.archived_at else ""
    description = (found.description or "(blanked by the archive)").split("\n")
    lines = [
        f"{found.id}: {found.status}{archived}",
        f"received: {found.created_at:%Y-%m-%d %H:%M %Z}",
        f"kind: {found.content_kind}",
        f"link: {found.link or '-'}",
        f"reporter's e-mail: {found.contact_email or '-'}",
        "description:",
        *(f"  {line.removesuffix(chr(13))}" for line in description),
    ]
    for decision in found.decisions:
        shares = f" shares {', '.join(decision.share_ids)}" if decision.share_ids else ""
        note = f": {decision.note}" if decision.note else ""
        lines.append(
            f"decision: {decision.action} by {decision.by} on "
            f"{decision.at:%Y-%m-%d %H:%M %Z}{shares}{note}"
        )
    for line in lines:
        _say(line)


@moderation_app.command("takedown")
@_errors_as_data
def takedown_command(
    report: ReportArg,
    url: UrlOption,
    by: ByOption = None,
    note: NoteOption = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be disabled; change nothing.")
    ] = False,
    reopen: ReopenOption = False,
    nextcloud_url: Annotated[
        str | None,
        typer.Option(help="Nextcloud's base URL (default: the reported link's https://host)."),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            help="The deployment's inventory: a link of another account is then deleted as "
            "its owner, with a short-lived app password from occ on the Nextcloud host."
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            help="The link's owner, for a password-protected link of another account "
            "(otherwise read from the link)."
        ),
    ] = None,
    ca: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Disable the reported public link in Nextcloud and record who did it and when."""
    from educloud.clients.nextcloud import client_from_env

    moderation = _client(url, ca)
    target = nextcloud_url
    if target is None:
        link = moderation.get_report(report).link
        if not link:
            raise EducloudError(f"{report} has no link: give --nextcloud-url")
        target = lib.link_origin(link)
    done = lib.takedown(
        moderation,
        client_from_env(target),
        report,
        by=by or lib.operator_login(),
        note=note,
        dry_run=dry_run,
        reopen=reopen,
        owners=_owners(inventory, target),
        owner=owner,
    )
    if as_json:
        print(_as_json(done))
        return
    _say(_takedown_line(done))


def _takedown_line(done: lib.Takedown) -> str:
    reference = done.report.id
    if done.already_recorded:
        return f"{reference}: already taken down, and the link no longer opens: nothing to do"
    shares = ", ".join(f"share {i} ({p})" for i, p in zip(done.share_ids, done.paths, strict=True))
    if done.dry_run:
        if done.already_gone:
            return f"{reference}: would record a takedown; the link no longer opens (dry run)"
        if done.owner is not None:
            return (
                f"{reference}: would disable {done.owner}'s public link {done.token} as "
                f"{done.owner} and record a takedown (dry run)"
            )
        return f"{reference}: would disable {shares} and record a takedown (dry run)"
    last = done.report.last_decision
    when = f" by {last.by} at {last.at:%Y-%m-%d %H:%M %Z}" if last else ""
    if done.already_gone:
        return f"{reference}: the link no longer opened; takedown recorded{when}"
    whose = f" of {done.owner}" if done.owner is not None else ""
    return f"{reference}: disabled {shares}{whose}; takedown recorded{when}"


@moderation_app.command("dismiss")
@_errors_as_data
def dismiss_command(
    report: ReportArg,
    url: UrlOption,
    by: ByOption = None,
    note: NoteOption = "",
    reopen: ReopenOption = False,
    ca: CaOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close the report without a takedown (nothing illicit found), recorded."""
    done = lib.dismiss(
        _client(url, ca), report, by=by or lib.operator_login(), note=note, reopen=reopen
    )
    if as_json:
        print(_as_json(done))
        return
    last = done.last_decision
    when = f" by {last.by} at {last.at:%Y-%m-%d %H:%M %Z}" if last else ""
    _say(f"{done.id}: dismissed{when}")
