"""`educloud docs` (C6): the privacy notice and the record of processing, from an inventory.

Each test writes a small inventory of its own (one reverse proxy host with the notice's
values), so nothing depends on the lab being up; ansible-inventory reads it as the
playbook would.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from educloud import policy
from educloud.errors import EducloudError
from educloud.transparency import documents as transparency
from educloud.transparency.documents import Document

NOTICE: dict[str, Any] = {
    "controller_name": "Académie d'Exemple",
    "controller_address": "Rectorat\n1 rue de l'Exemple\n75000 Paris",
    "dpo_email": "dpo@academie.example",
    "reporting_email": "signalement@academie.example",
    "processing_purposes": [
        {
            "purpose": "Stocker, partager et coéditer des fichiers",
            "legal_basis": "Mission de service public d'enseignement (RGPD art. 6.1.e)",
        }
    ],
    "data_subjects": ["Élèves", "Personnels des établissements"],
    "recipients": ["Les personnels habilités de l'académie"],
}


def write_inventory(directory: Path, notice: dict[str, Any]) -> Path:
    directory.mkdir()
    inventory = {
        "all": {
            "hosts": {"proxy1": {"ansible_host": "198.18.0.10"}},
            "children": {"reverse_proxy": {"hosts": {"proxy1": {}}}},
            "vars": {
                "educloud_hosting": {
                    "provider": "educloud-lab",
                    "country": "FR",
                    "datacenter": "local",
                },
                "reverse_proxy_privacy_notice": notice,
            },
        }
    }
    (directory / "hosts.yml").write_text(
        yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8"
    )
    return directory


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Document]:
    inventory = write_inventory(tmp_path_factory.mktemp("inv") / "academie", NOTICE)
    return {d.stem: d for d in transparency.build(inventory)}


def text_of(document: str) -> str:
    """What a reader sees: tags and Markdown escapes removed, spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", document)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"\\(.)", r"\1", without_tags)))


@pytest.mark.parametrize("stem", ["notice-confidentialite", "registre-des-traitements"])
@pytest.mark.parametrize("form", ["html", "markdown"])
def test_every_retention_category_and_its_days_appear(
    documents: dict[str, Document], stem: str, form: str
) -> None:
    text = text_of(getattr(documents[stem], form))
    # Each category's description, then its period in the same table row.
    missing = [
        name
        for name, rule in policy.load().retention.items()
        if not re.search(
            rf"{re.escape(rule['description'])}\s*\|?\s*{rule['retention_days']} jours?\b", text
        )
    ]
    assert not missing, f"{stem} ({form}) does not state the retention of {missing}"


@pytest.mark.parametrize("stem", ["notice-confidentialite", "registre-des-traitements"])
@pytest.mark.parametrize("form", ["html", "markdown"])
def test_hosting_country_is_stated(documents: dict[str, Document], stem: str, form: str) -> None:
    text = text_of(getattr(documents[stem], form))
    assert "uniquement en France" in text


def test_notice_is_the_roles_page_with_its_sections(documents: dict[str, Document]) -> None:
    notice = documents["notice-confidentialite"].html
    assert re.search(r'<html[^>]*\blang="fr"', notice)
    for section in ("conservation", "hebergement", "destinataires", "droits", "signalement"):
        assert f'<section id="{section}">' in notice, section
    assert '<section id="registre">' in notice
    assert "dpo@academie.example" in notice and "signalement@academie.example" in notice


def test_record_has_the_article_30_sections(documents: dict[str, Document]) -> None:
    record = documents["registre-des-traitements"].html
    for section in (
        "responsable",
        "finalites",
        "personnes",
        "conservation",
        "destinataires",
        "transferts",
        "securite",
        "signature",
    ):
        assert f'<section id="{section}">' in record, section
    text = text_of(record)
    assert "Mission de service public d'enseignement (RGPD art. 6.1.e)" in text
    assert "Aucun transfert hors de France" in text
    # The security measures are the charter's C10 guarantee.
    assert policy.load().guarantee("C10").text in text


@pytest.mark.parametrize("form", ["html", "markdown"])
def test_record_ends_with_a_signature_block_for_the_dpo(
    documents: dict[str, Document], form: str
) -> None:
    record = getattr(documents["registre-des-traitements"], form)
    block = text_of(record.split("Visa", 1)[1])
    assert "Délégué à la protection des données" in block
    assert re.search(r"Nom.*Qualité.*Date.*Signature", block), block


def test_audience_summaries_speak_to_pupils_parents_and_staff(
    documents: dict[str, Document],
) -> None:
    summaries = documents["resumes-par-public"]
    for heading in ("## Pour les élèves", "## Pour les parents", "## Pour les personnels"):
        assert heading in summaries.markdown
    text = text_of(summaries.html)
    retention = policy.load().retention
    assert f"il y reste {retention['deleted_files']['retention_days']} jours" in text
    assert f"effacés {retention['accounts']['retention_days']} jours après ton départ" in text
    assert "dpo@academie.example" in text and "en France" in text


@pytest.mark.parametrize(
    "stem", ["notice-confidentialite", "resumes-par-public", "registre-des-traitements"]
)
def test_markdown_has_no_raw_html_left(documents: dict[str, Document], stem: str) -> None:
    markdown = documents[stem].markdown
    assert not re.search(r"(?<!\\)<[A-Za-z/!]", markdown), "raw HTML tag in the Markdown"
    assert not re.search(r"&(#\d+|[a-z]+);", markdown), "HTML entity in the Markdown"
    assert markdown.startswith("# ")


def test_html_to_markdown_keeps_tables_links_and_escapes_text() -> None:
    converted = transparency.html_to_markdown(
        "<h2>Titre</h2><p>a <a href='mailto:x@y'>x@y</a> &lt;script&gt; *b*</p>"
        "<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>x | y</td></tr></table>"
    )
    assert converted == (
        "## Titre\n\na [x@y](mailto:x@y) \\<script\\> \\*b\\*\n\n"
        "| A | B |\n|---|---|\n| 1 | x \\| y |\n"
    )


def test_missing_inventory_value_is_a_clear_error(tmp_path: Path) -> None:
    notice = {k: v for k, v in NOTICE.items() if k != "dpo_email"}
    inventory = write_inventory(tmp_path / "academie", notice)
    with pytest.raises(EducloudError, match=r"reverse_proxy_privacy_notice lacks dpo_email"):
        transparency.build(inventory)


def test_inventory_without_reverse_proxy_is_a_clear_error(tmp_path: Path) -> None:
    inventory = tmp_path / "vide"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    db1:\n      ansible_host: 198.18.0.11\n", encoding="utf-8"
    )
    with pytest.raises(EducloudError, match="no host in the reverse_proxy group"):
        transparency.build(inventory)


def test_written_files_are_listed(tmp_path: Path, documents: dict[str, Document]) -> None:
    written = transparency.write(list(documents.values()), tmp_path / "docs")
    assert sorted(p.name for p in written) == sorted(
        f"{stem}.{suffix}" for stem in documents for suffix in ("html", "md")
    )
