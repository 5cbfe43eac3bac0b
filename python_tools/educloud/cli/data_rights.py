"""`educloud stats` (C12) and `educloud docs` (C6): parse, call the library, print.

educloud stats [--inventory DIR] [--realm NAME] [--nextcloud-url URL] [--json] [--threshold N]
educloud docs [--inventory DIR] --output DIR [--pdf]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from educloud.cli.options import DEFAULT_INVENTORY, InventoryOption, JsonOption, RealmOption

if TYPE_CHECKING:
    from educloud.stats.aggregate import Statistics

console = Console()


def stats(
    inventory: InventoryOption = DEFAULT_INVENTORY,
    realm: RealmOption = None,
    nextcloud_url: Annotated[
        str | None,
        typer.Option(
            help="Nextcloud base URL, to add the storage used (admin app password in "
            "EDUCLOUD_NEXTCLOUD_PASSWORD); without it storage is not measured."
        ),
    ] = None,
    as_json: JsonOption = False,
    threshold: Annotated[
        int | None,
        typer.Option(help="Raise the small-count threshold of policies/statistics.yml."),
    ] = None,
) -> None:
    """Usage per school and profile, small counts suppressed (C12): nothing per person."""
    from educloud.stats.collect import statistics

    result = statistics(inventory, realm=realm, nextcloud_url=nextcloud_url, threshold=threshold)
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
    inventory: InventoryOption = DEFAULT_INVENTORY,
    pdf: bool = typer.Option(False, "--pdf", help="Also print PDFs (needs chromium)."),
) -> None:
    """Privacy notice, audience summaries and record of processing (C6), in HTML and Markdown."""
    from educloud.transparency import documents as transparency

    written = transparency.write(transparency.build(inventory), output, pdf=pdf)
    for path in written:
        console.print(str(path), highlight=False, soft_wrap=True)
