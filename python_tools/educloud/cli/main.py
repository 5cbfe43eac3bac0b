"""The `educloud` command line: parses arguments, calls the library, prints.

Every error a user can cause surfaces as one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from educloud.cli import data_rights as data_rights_cli
from educloud.cli.accounts import accounts_app
from educloud.cli.backup import backup_app
from educloud.cli.export import export_app
from educloud.cli.init import init as init_command
from educloud.cli.moderation import moderation_app
from educloud.cli.options import DEFAULT_INVENTORY, InventoryOption
from educloud.cli.retention import retention_app
from educloud.errors import EducloudError

app = typer.Typer(
    no_args_is_help=True,
    help="Deploy and verify the educloud stack.",
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
lab_app = typer.Typer(no_args_is_help=True, help="The local lab of Debian 12 hosts.")
app.add_typer(lab_app, name="lab")
app.add_typer(accounts_app, name="accounts")
app.command("stats")(data_rights_cli.stats)
app.command("docs")(data_rights_cli.docs)
app.command("init")(init_command)
app.add_typer(retention_app, name="retention")
app.add_typer(export_app, name="export")
app.add_typer(moderation_app, name="moderation")
app.add_typer(backup_app, name="backup")
provider_app = typer.Typer(
    no_args_is_help=True, help="Keycloak providers built from this repository (extensions/)."
)
app.add_typer(provider_app, name="keycloak-provider")

console = Console()
err_console = Console(stderr=True)

HostOption = Annotated[
    list[str] | None,
    typer.Option("--host", "-H", help="Only this lab host (repeatable); new names are temporary."),
]


VaultPasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--vault-password-file",
        help="The inventory's Ansible Vault password file (else ANSIBLE_VAULT_PASSWORD_FILE, "
        "else vault_password_file in the inventory's ansible.cfg).",
    ),
]


def _use_vault_password_file(path: Path | None) -> None:
    """Hand the file to Ansible the way it reads one (ANSIBLE_VAULT_PASSWORD_FILE)."""
    if path is None:
        return
    if not path.is_file():
        raise EducloudError(f"--vault-password-file {path}: no such file")
    from educloud.deployment.ansible import VAULT_ENV

    os.environ[VAULT_ENV] = str(path.resolve())


def _progress(message: str) -> None:
    err_console.print(f"[dim]…[/dim] {message}")


VariantOption = Annotated[
    str,
    typer.Option(
        "--variant",
        help="Which topology: single (lab/topology.yml, inventories/lab) or regional "
        "(lab/topology-regional.yml, inventories/lab-regional).",
    ),
]


def _variant_hosts(variant: str | None) -> list[str] | None:
    """The non-temporary hosts of one topology (None: no topology chosen)."""
    if variant is None:
        return None
    from educloud.lab import orchestrate
    from educloud.lab.settings import check_variant

    check_variant(variant)
    return [h.name for h in orchestrate.status() if not h.dynamic and h.variant == variant]


@lab_app.command("up")
def lab_up(
    host: HostOption = None,
    as_json: bool = typer.Option(False, "--json"),
    variant: VariantOption = "single",
) -> None:
    """Boot the lab's hosts (idempotent): network, apt proxy, image, hosts, inventory."""
    from educloud.lab import orchestrate

    result = orchestrate.up(host or None, progress=_progress, variant=variant)
    if as_json:
        print(
            json.dumps(
                {
                    "hosts": [asdict(h) for h in result.hosts],
                    "image": str(result.image),
                    "inventory": str(result.inventory),
                    "ssh_key": str(result.ssh_key),
                    "boot_seconds": result.boot_seconds,
                },
                indent=2,
            )
        )
        return
    _print_hosts(result.hosts)
    for name, seconds in result.boot_seconds.items():
        console.print(f"{name} booted in {seconds:.1f} s")
    console.print(f"inventory: {result.inventory}")


@lab_app.command("status")
def lab_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Show the lab's hosts and services."""
    from educloud.lab import orchestrate

    hosts = orchestrate.status()
    services = orchestrate.services_status()
    if as_json:
        print(json.dumps({"hosts": [asdict(h) for h in hosts], "services": services}, indent=2))
        return
    _print_hosts(hosts)
    for name, running in services.items():
        console.print(f"{name}: {'up' if running else 'down'}")


@lab_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_ssh(ctx: typer.Context, host: str) -> None:
    """Open a shell (or run a command) on a lab host: educloud lab ssh HOST [CMD...]."""
    from educloud.lab import orchestrate

    argv = orchestrate.ssh_command(host) + list(ctx.args)
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - replaces this process with ssh, no shell


@lab_app.command("down")
def lab_down(
    host: HostOption = None,
    topology: bool = typer.Option(
        False, "--topology", help="Only the topologies' hosts, not temporary ones."
    ),
    variant: Annotated[
        str | None, typer.Option("--variant", help="Only this topology's hosts.")
    ] = None,
    power_cut: bool = typer.Option(
        False, "--power-cut", help="Kill the hosts at once, no shutdown (failure drills)."
    ),
) -> None:
    """Stop hosts (default: all); with none left, stop the lab's services and links."""
    from educloud.lab import orchestrate

    names = host or _variant_hosts(variant)  # neither: every host
    if topology:
        names = [h.name for h in orchestrate.status() if not h.dynamic]
    stopped = orchestrate.down(names, progress=_progress, power_cut=power_cut)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@lab_app.command("destroy")
def lab_destroy(
    host: HostOption = None,
    purge: bool = typer.Option(False, help="Also delete the image, apt cache and artifacts."),
    variant: Annotated[
        str | None, typer.Option("--variant", help="Only this topology's hosts.")
    ] = None,
) -> None:
    """Stop and delete hosts (default: all) so the next 'up' starts afresh."""
    from educloud.lab import orchestrate

    names = host or _variant_hosts(variant)
    if variant is not None and not names:
        console.print("destroyed: nothing")
        return
    gone = orchestrate.destroy(names, progress=_progress, keep_cache=not purge)
    console.print(f"destroyed: {', '.join(gone) if gone else 'nothing'}")


@app.command("deploy")
def deploy(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    limit: Annotated[str | None, typer.Option(help="Only these hosts or groups.")] = None,
    check: bool = typer.Option(False, "--check", help="Dry run: show what would change."),
    vault_password_file: VaultPasswordFile = None,
) -> None:
    """Apply site.yml to an inventory (the lab by default)."""
    from educloud import deploy as deploy_lib

    _use_vault_password_file(vault_password_file)
    result = deploy_lib.run_site(inventory, limit=limit, check=check)
    console.print(deploy_lib.summary_line(result))
    for notice in result.notices:
        console.print(f"not done: {notice}", markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(2)


@provider_app.command("build")
def provider_build(
    dist: Annotated[
        Path,
        typer.Option(
            help="The Keycloak distribution archive the role installs "
            "(keycloak-quarkus-dist-X.Y.Z.zip, its SHA-256 checked by you)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory to write the jar into.")] = Path("."),
) -> None:
    """Build the accounts tool's bulk import provider for that Keycloak release.

    List the jar in keycloak_providers (src) to install it (docs/accounts.md)."""
    from educloud.keycloak_provider import build as provider_build_lib

    jar = provider_build_lib.build(dist, out)
    console.print(f"{jar}  (keycloak_providers: name educloud-bulk-import, src {jar})")


@app.command("summary")
def summary(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    vault_password_file: VaultPasswordFile = None,
) -> None:
    """Print what is deployed and run each role's host checks against it."""
    from educloud import hostchecks
    from educloud.junit import tally
    from educloud.lab import inventory as lab_inventory

    _use_vault_password_file(vault_password_file)

    if _absolute(inventory) == lab_inventory.inventory_dir():
        from educloud.lab import orchestrate

        _print_hosts(orchestrate.status())
    results = hostchecks.run_host_checks(inventory)
    table = Table(title=f"host checks on {inventory}")
    for column in ("role", "passed", "failed", "skipped"):
        table.add_column(column)
    failures: list[str] = []
    for role, cases in results.items():
        counts = tally(cases)
        table.add_row(role, str(counts["passed"]), str(counts["failed"]), str(counts["skipped"]))
        failures += [f"{role}: {c.name}: {c.message}" for c in cases if c.outcome == "failed"]
    console.print(table)
    _print_entry_points(inventory)
    for line in failures:
        err_console.print(f"[red]failed[/red] {line}", highlight=False)
    if failures:
        raise typer.Exit(1)


# Exit codes of `educloud verify`: a guarantee failed; the run did not complete.
VERIFY_FAILED = 1
VERIFY_INTERRUPTED = 3


@app.command("verify")
def verify(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    limit: Annotated[str, typer.Option(help="Only these hosts or groups (comma-separated).")] = "",
    output: Annotated[Path, typer.Option(help="Where the reports are written.")] = Path(
        "reports/charter"
    ),
    workers: Annotated[
        int, typer.Option(help="Parallel pytest workers (0: one per host, up to the CPUs).")
    ] = 0,
    allow_public_targets: Annotated[
        bool,
        typer.Option(help="Let the checks reach addresses outside loopback and the lab range."),
    ] = False,
    guarantee: Annotated[
        list[str] | None,
        typer.Option("--guarantee", "-g", help="Only this guarantee's checks (repeatable)."),
    ] = None,
    vault_password_file: VaultPasswordFile = None,
) -> None:
    """Check every guarantee of the charter on a deployment; write the compliance report.

    Exit code: 0 when no guarantee failed, 1 when one failed, 3 when the run did not
    complete (then no guarantee is reported as anything but "interrompu")."""
    from educloud.charter import report as report_mod
    from educloud.charter import verify as verify_mod

    _use_vault_password_file(vault_password_file)
    result = verify_mod.verify(
        inventory, output, limit, workers, allow_public_targets, guarantees=guarantee or ()
    )
    table = Table(title=f"charte educloud sur {inventory} ({result.seconds:.0f} s)")
    table.add_column("garantie", no_wrap=True)
    table.add_column("intitulé")
    table.add_column("statut", no_wrap=True)
    for column in ("réussis", "échoués", "non exécutés"):
        table.add_column(column, no_wrap=True, justify="right")
    colours = {
        "verified": "green",
        "partial": "cyan",
        "declared": "magenta",
        "failed": "red",
        "not_verifiable": "yellow",
        "attest": "blue",
        "interrupted": "red",
    }
    for entry in result.report:
        counts = entry.counts
        status = report_mod.STATUS_FR[entry.status]
        table.add_row(
            entry.id,
            entry.title,
            f"[{colours[entry.status]}]{status}[/]",
            str(counts["passed"]),
            str(counts["failed"]),
            str(counts["skipped"]),
        )
    # Wide enough for the guarantees' titles, also when the output goes to a CI log.
    wide = Console(width=max(console.size.width, 112))
    wide.print(table)
    for entry in result.report:
        for check in entry.checks:
            if entry.status in {"failed", "partial", "declared"} and check.outcome != "passed":
                word = report_mod.OUTCOME_FR[check.outcome]
                wide.print(
                    f"{entry.id} {word} : {check.case} — {check.message}",
                    markup=False,
                    highlight=False,
                )
    for kind, path in {**result.outputs, "junit": result.junit}.items():
        console.print(f"{kind}: {path}", highlight=False)
    if result.interrupted:
        err_console.print("[red]vérification interrompue :[/red]", highlight=False)
        for reason in result.interrupted:
            err_console.print(f"  {reason}", markup=False, highlight=False)
        raise typer.Exit(VERIFY_INTERRUPTED)
    failed = report_mod.technical_failures(result.report)
    if failed:
        err_console.print(f"[red]failed guarantees:[/red] {', '.join(failed)}", highlight=False)
        raise typer.Exit(VERIFY_FAILED)


@app.command("policy")
def policy_check(
    directory: Annotated[Path | None, typer.Option(help="A copy of policies/.")] = None,
) -> None:
    """Validate the policies/ files (schemas and cross-references)."""
    from educloud import policy

    loaded = policy.load(directory)
    # The files kept apart from `load` (an older copy may lack them) are checked here too.
    policy.load_statistics(directory)
    policy.load_security(directory)
    console.print(
        f"{loaded.directory}: {len(loaded.guarantees)} guarantees, "
        f"{len(loaded.retention)} retention categories, {len(loaded.destinations)} egress "
        f"destinations, {len(loaded.providers)} approved providers: valid",
        highlight=False,
    )


def _print_entry_points(inventory: Path) -> None:
    """Where users log in, and how to reach names DNS does not know yet from this machine."""
    from educloud.deployment import model as deployment

    found = deployment.load(inventory)
    for host in found.hosts:
        hostname = host.variables.get("keycloak_hostname")
        if "keycloak" not in host.groups or not isinstance(hostname, str):
            continue
        for realm in host.variables.get("keycloak_realms", []):
            console.print(
                f"Keycloak login ({realm['name']}): {hostname}/realms/{realm['name']}/account"
            )
        name = hostname.split("//", 1)[-1]
        if name in found.pins():
            console.print(
                f"  (before DNS: curl --resolve {name}:443:{found.pins()[name]}"
                + (f" --cacert {found.ca_file})" if found.ca_file else ")")
            )


def _absolute(path: Path) -> Path:
    from educloud.paths import repo_root

    return (path if path.is_absolute() else repo_root() / path).resolve()


def _print_hosts(hosts: list) -> None:  # type: ignore[type-arg]
    table = Table(title="educloud lab")
    for column in ("host", "address", "groups", "state"):
        table.add_column(column)
    for host in hosts:
        state = "running" if host.running else "stopped"
        groups = ", ".join(host.groups) or ("(temporary)" if host.dynamic else "-")
        table.add_row(host.name, host.address, groups, state)
    console.print(table)


def main() -> None:
    try:
        app()
    except EducloudError as exc:
        # The message may quote data (a report's link, a file's line): text, never markup.
        err_console.print(
            Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; run the same command again to resume")
        sys.exit(130)
