"""`educloud stats` (C12) and `educloud docs` (C6): parse, call the library, print.

educloud stats [--inventory DIR] [--realm NAME] [--nextcloud-url URL] [--json] [--threshold N]
educloud docs [--inventory DIR] --output DIR [--pdf]
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from educloud.errors import EducloudError

if TYPE_CHECKING:
    from educloud.stats.aggregate import Statistics

CLIENT_ID = "educloud-data-rights"
SECRET_ENV = "EDUCLOUD_DATA_RIGHTS_CLIENT_SECRET"  # noqa: S105 (a variable name)

console = Console()

InventoryOption = Annotated[Path, typer.Option(help="The deployment's Ansible inventory.")]


def stats(
    inventory: InventoryOption = Path("inventories/lab"),
    realm: Annotated[str | None, typer.Option(help="Realm (default: the first).")] = None,
    nextcloud_url: Annotated[
        str | None,
        typer.Option(
            help="Nextcloud base URL, to add the storage used (admin app password in "
            "EDUCLOUD_NEXTCLOUD_PASSWORD); without it storage is not measured."
        ),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    threshold: Annotated[
        int | None,
        typer.Option(help="Raise the small-count threshold of policies/statistics.yml."),
    ] = None,
) -> None:
    """Usage per school and profile, small counts suppressed (C12): nothing per person."""
    from educloud import policy
    from educloud.accounts.keycloak_directory import KeycloakDirectory
    from educloud.accounts.target import from_inventory
    from educloud.deployment import model as deployment
    from educloud.netpin import pinned_names
    from educloud.stats import aggregate as lib
    from educloud.stats import usage

    found = deployment.load(inventory)
    rules = policy.load_statistics(found.policies_dir)
    chosen = rules.small_count_threshold
    if threshold is not None:
        if threshold < chosen:
            raise EducloudError(
                f"--threshold {threshold} is under the policy's {chosen} "
                "(policies/statistics.yml): it may only be raised"
            )
        chosen = threshold
    target = from_inventory(inventory, realm=realm, client_id=CLIENT_ID, secret_env=SECRET_ENV)
    since = (datetime.now(UTC) - timedelta(days=rules.active_days)).date()
    with pinned_names(target.pins):
        directory = KeycloakDirectory.connect(target.connection)
        storage_of = None
        if nextcloud_url:
            from educloud.clients.nextcloud import client_from_env

            storage_of = client_from_env(nextcloud_url).storage_used
        records = usage.read_usage(directory, since=since, storage_of=storage_of)
    result = lib.aggregate(
        records,
        threshold=chosen,
        active_days=rules.active_days,
        storage_measured=storage_of is not None,
    )
    del records  # per-account data ends here
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    print_statistics(result, console)


def print_statistics(result: Statistics, out: Console) -> None:
    """One table per school; the cells are the library's, already suppressed."""
    if not result.schools:
        out.print("aucun compte géré dans ce domaine")
        return
    for school in result.schools:
        table = Table(title=f"établissement {school.uai}")
        table.add_column("profil")
        table.add_column("comptes", justify="right")
        table.add_column(f"actifs ({result.active_days} j)", justify="right")
        table.add_column("stockage", justify="right")
        for row in school.rows:
            table.add_row(row.profile, str(row.accounts), str(row.active), row.storage)
        out.print(table)
    out.print(
        f"Effectifs inférieurs à {result.threshold} affichés « < {result.threshold} » ; "
        "« masqué » : caché pour qu'on ne puisse pas les retrouver par différence.",
        highlight=False,
    )


def docs(
    output: Annotated[Path, typer.Option(help="Directory to write the documents to.")],
    inventory: InventoryOption = Path("inventories/lab"),
    pdf: bool = typer.Option(False, "--pdf", help="Also print PDFs (needs chromium)."),
) -> None:
    """Privacy notice, audience summaries and record of processing (C6), in HTML and Markdown."""
    from educloud.transparency import documents as transparency

    written = transparency.write(transparency.build(inventory), output, pdf=pdf)
    for path in written:
        console.print(str(path), highlight=False, soft_wrap=True)
