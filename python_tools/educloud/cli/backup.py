"""`educloud backup`: parse, call educloud.backup, print. No logic of its own.

educloud backup run|snapshots|check [--read-data]   the agent of each backup host, over SSH
educloud backup drill                              restore the latest backup onto a lab host
educloud backup forget [--apply]                   retention of the append-only repositories
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from educloud.backup import drill as drill_lib
from educloud.backup import maintenance, remote
from educloud.backup.status import BackupError, BackupStatus
from educloud.cli.options import DEFAULT_INVENTORY, InventoryOption, JsonOption

backup_app = typer.Typer(
    no_args_is_help=True,
    help="Encrypted backups (C1, C7, C10): run, list, check, and prove them by a restore drill.",
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

HostsOption = Annotated[
    list[str] | None,
    typer.Option("--host", "-H", help="Only this backup host (repeatable); default: all."),
]
SIX_HOURS = 6 * 3600


def _agents(inventory: Path, host: list[str] | None) -> list[remote.RemoteAgent]:
    return [remote.RemoteAgent(h) for h in remote.backup_hosts(inventory, host or ())]


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _status_line(name: str, status: BackupStatus | None) -> str:
    if status is None or status.last_run is None:
        return f"{name}: no run recorded yet"
    run = status.last_run
    finished = f"{run.finished:%Y-%m-%d %H:%M:%S} UTC" if run.finished else "?"
    if not run.ok:
        return f"{name}: last run FAILED at {finished}: {run.error or 'no message'}"
    duration = f"{run.duration_s:.0f} s" if run.duration_s is not None else "?"
    return (
        f"{name}: ok at {finished} in {duration}; snapshot {(run.snapshot_id or '?')[:8]}, "
        f"{run.files_new if run.files_new is not None else '?'} new files, "
        f"{_size(run.data_added_bytes)} added; {_count(len(status.snapshots), 'snapshot')} kept"
    )


@backup_app.command("run")
def run_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    host: HostsOption = None,
    timeout: Annotated[
        int, typer.Option(help="Seconds to wait for each host's run.", min=60)
    ] = SIX_HOURS,
) -> None:
    """Run a backup now on each backup host (the timer's service) and wait for it."""
    failed = []
    for agent in _agents(inventory, host):
        console.print(f"{agent.name}: backing up…")
        started, status = agent.run(timeout=timeout)
        console.print(_status_line(agent.name, status))
        if started.returncode != 0 or status is None or not status.last_run:
            failed.append(agent.name)
            if started.returncode != 0:
                err_console.print(
                    f"[red]{agent.name}: educloud-backup.service failed[/red]: "
                    f"{started.said()} (journalctl -u educloud-backup.service on the host)"
                )
    if failed:
        raise typer.Exit(1)


@backup_app.command("snapshots")
def snapshots_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    host: HostsOption = None,
    as_json: JsonOption = False,
) -> None:
    """List each backup host's snapshots in its repository (read from the repository)."""
    now = datetime.now(UTC)
    found = {agent.name: agent.snapshots() for agent in _agents(inventory, host)}
    if as_json:
        document = {
            name: [{"id": s.id, "short_id": s.short_id, "time": s.time.isoformat()} for s in snaps]
            for name, snaps in found.items()
        }
        print(json.dumps(document, indent=2))
        return
    for name, snaps in found.items():
        table = Table(title=f"{name}: {_count(len(snaps), 'snapshot')}")
        for column in ("id", "time (UTC)", "age"):
            table.add_column(column)
        for snap in snaps:
            table.add_row(
                snap.short_id,
                f"{snap.time:%Y-%m-%d %H:%M:%S}",
                drill_lib.format_age(snap.age(now)),
            )
        console.print(table)


@backup_app.command("check")
def check_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    host: HostsOption = None,
    read_data: Annotated[
        bool,
        typer.Option(
            "--read-data", help="Read back and hash every pack (slow: the whole repository)."
        ),
    ] = False,
    timeout: Annotated[int, typer.Option(help="Seconds per host.", min=60)] = SIX_HOURS,
) -> None:
    """Check each backup host's repository with restic check; exit 1 if one has an error."""
    failed = []
    for agent in _agents(inventory, host):
        answer = agent.check(read_data=read_data, timeout=timeout)
        output = (answer.stdout + answer.stderr).strip()
        for line in output.splitlines()[-20:]:
            console.print(f"{agent.name}: {line}", markup=False)
        if answer.returncode == 0:
            console.print(f"{agent.name}: [green]repository ok[/green]")
        else:
            failed.append(agent.name)
            err_console.print(f"[red]{agent.name}: restic check failed[/red] ({answer.said()})")
    if failed:
        raise typer.Exit(1)


@backup_app.command("forget")
def forget_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    host: HostsOption = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply", help="Oublier et élaguer (sans cette option : le plan seul, rien ne change)."
        ),
    ] = False,
) -> None:
    """Retention of the append-only repositories (C7), as the administrators.

    Each backup host's key may only append: restic forget and prune run here, with the
    policy's horizons (policies/retention.yml), the target reached as Ansible reaches it and
    the repository password read from the backup host. Without --apply, the plan only.
    """
    from educloud import policy
    from educloud.deployment import inventory as inventory_vars

    hosts = inventory_vars.load(inventory)
    keep = maintenance.Keep.from_policy(policy.load().retention["backups"])
    now = datetime.now(UTC)
    refused = []
    for client in remote.backup_hosts(inventory, host or ()):
        kind = maintenance.destination_kind(client, hosts)
        if kind != "target":
            console.print(
                f"{client.name} : sauvegardes chez un hébergeur ({kind}) ; l'hôte peut y "
                "effacer, son passage nocturne applique donc lui-même la conservation "
                "(restic forget --prune) : rien à faire d'ici",
                markup=False,
            )
            continue
        restic = maintenance.Restic(maintenance.storage_of(client, hosts))
        try:
            done = (maintenance.apply if apply else maintenance.plan)(restic, keep, now)
        except BackupError as error:
            refused.append(client.name)
            err_console.print(f"[red]{client.name}[/red] : {error}", markup=False)
            continue
        verb = "oubliés et élagués" if apply else "à oublier"
        console.print(
            f"{client.name} : {_count(len(done.snapshots), 'snapshot')} ; {len(done.removed)} "
            f"{verb} ; {len(done.kept)} gardés (quotidien {keep.daily_days} j, hebdomadaire "
            f"{keep.weekly_days} j, mensuel {keep.monthly_days} j)",
            markup=False,
        )
        for snap in done.removed:
            console.print(f"  - {snap.short_id} du {snap.time:%Y-%m-%d %H:%M} UTC", markup=False)
        if done.refusal:
            refused.append(client.name)
            err_console.print(done.refusal, markup=False)
    if not apply:
        console.print("plan seulement : rien n'a changé (--apply pour l'appliquer)")
    if refused:
        raise typer.Exit(1)


@backup_app.command("drill")
def drill_command(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    source: Annotated[
        str | None,
        typer.Option(help="The backup host whose latest backup is restored (default: first)."),
    ] = None,
    lab_host: Annotated[
        str, typer.Option(help="The temporary lab host to restore onto (made fresh).")
    ] = drill_lib.DEFAULT_LAB_HOST,
    keep_host: Annotated[
        bool, typer.Option("--keep-host", help="Keep the drill host afterwards (to look at it).")
    ] = False,
    repository_path: Annotated[
        str | None,
        typer.Option(
            help="No longer supported: the source's append-only account serves its own "
            "repository only (docs/backup.md)."
        ),
    ] = None,
) -> None:
    """Restore the latest backup onto a fresh lab host and prove it.

    Every table's rows and checksum, every file's SHA-256, Keycloak started on the
    restored database, a login. Exit 0 only when everything is proved; 1 with the failing
    step otherwise; 2 on bad arguments, before anything changes.
    """
    from educloud.deployment import inventory as inventory_vars
    from educloud.lab.drill import LabDrillHosts

    machines = LabDrillHosts()
    request = drill_lib.DrillRequest(inventory, source, lab_host, keep_host, repository_path)
    plan = drill_lib.plan_drill(request, inventory_vars.load(inventory), machines)
    console.print(
        f"drill: latest backup of {plan.source.name} onto a fresh {plan.lab_host}"
        + (f" from {plan.repository_path}" if plan.repository_path else "")
    )
    report = drill_lib.run_drill(
        plan, machines, progress=lambda m: err_console.print(f"[dim]… {m}[/dim]")
    )
    _print_drill(report)
    if not report.ok:
        for problem in report.problems:
            err_console.print(f"[bold red]drill FAILED:[/bold red] {problem}")
        if report.log:
            err_console.print(f"the playbook's log: {report.log}")
        raise typer.Exit(1)
    console.print("[bold green]drill passed[/bold green]: the backup restores and works")


def _print_drill(report: drill_lib.DrillReport) -> None:
    def seconds(value: float | None) -> str:
        return f"{value:.1f} s" if value is not None else "not reached"

    console.print(f"snapshot: {drill_lib.snapshot_line(report.snapshot)}")
    console.print(f"backup age at restore: {drill_lib.format_age(report.backup_age)}")
    console.print(f"restore: {seconds(report.restore_seconds)}")
    for step in ("restore_postgresql", "keycloak_ready"):
        if step in report.steps:
            console.print(f"{step.replace('_', ' ')}: {seconds(report.steps[step])}")
    if report.postgres is not None:
        console.print(
            f"tables verified: {report.postgres.tables} in {report.postgres.databases} "
            f"databases, {report.postgres.rows} rows (row counts and checksums)"
        )
    else:
        console.print("tables verified: not reached")
    console.print(
        f"files verified: {report.files.files} (SHA-256)"
        if report.files is not None
        else "files verified: not reached"
    )
    if report.login is not None:
        login = report.login
        state = "ok" if login.ok else "FAILED"
        console.print(
            f"Keycloak login {state}: {login.user} in realm {login.realm} "
            f"(token for {login.preferred_username or '?'}); realm {login.tenant_realm}: "
            f"{login.tenant_admin or 'the realm (no administrator declared)'} "
            f"{'found' if login.tenant_admin_found else 'MISSING'}"
        )
    else:
        console.print("Keycloak login: not reached")
    console.print(f"total: {report.total_seconds:.0f} s")
