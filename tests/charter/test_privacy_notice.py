"""The privacy notice, served in French by the platform itself (C6, C9)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from educloud.deployment.model import Deployment
from educloud.policy import Policies

COUNTRY_NAMES = {"FR": "France"}


def _notice(site: str, deployment: Deployment, ca_bundle: str) -> requests.Response:
    return requests.get(
        f"https://{site}{deployment.privacy_path}",
        verify=ca_bundle,
        timeout=15,
        allow_redirects=False,
    )


def _text(body: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


_DAYS = re.compile(r"\b(\d+)\s*jours?\b")


class _Rows(HTMLParser):
    """The table rows (their cells' text) and list items of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._open: list[tuple[str, list[str]]] = []  # (tag, cells) of each open row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"tr", "li"}:
            # An unclosed row or item ends where the next one of its kind starts.
            if self._open and self._open[-1][0] == tag:
                self._close(tag)
            self._open.append((tag, [""]))
        elif tag in {"td", "th"} and self._open and self._open[-1][0] == "tr":
            cells = self._open[-1][1]
            if cells[-1].strip():
                cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._open and self._open[-1][0] == "tr":
            self._open[-1][1].append("")
        elif tag in {"tr", "li"} and any(t == tag for t, _ in self._open):
            self._close(tag)

    def handle_data(self, data: str) -> None:
        if self._open:
            cells = self._open[-1][1]
            cells[-1] += data

    def close(self) -> None:
        super().close()
        while self._open:  # rows and items left open at the end of the page
            self._close(self._open[-1][0])

    def _close(self, tag: str) -> None:
        while self._open:
            closed, cells = self._open.pop()
            self.rows.append([" ".join(c.split()) for c in cells if c.strip()])
            if closed == tag:
                return


def notice_rows(body: str) -> list[list[str]]:
    """Each table row (list of cell texts) and list item (one text) of the notice."""
    parser = _Rows()
    parser.feed(body)
    parser.close()
    return parser.rows


def retention_row_problems(body: str, retention: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each retention category must have a row (or list item) of the notice naming it
    with its own period, and no row naming it with another period."""
    rows = notice_rows(body)
    problems = []
    for name, rule in retention.items():
        description = " ".join(str(rule["description"]).split())
        days = int(rule["retention_days"])
        naming = [row for row in rows if description in " ".join(row)]
        if not naming:
            problems.append(f"{name}: no row of the notice names '{description}'")
            continue
        for row in naming:
            stated = {int(d) for d in _DAYS.findall(" ".join(row))}
            if stated != {days}:
                shown = ", ".join(f"{d} jours" for d in sorted(stated)) or "aucune durée"
                problems.append(f"{name}: its row states {shown}, the policy {days} jours")
    return problems


@pytest.mark.charter("C6")
def test_privacy_notice_served_in_french(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    response = _notice(public_site, deployment, ca_bundle)
    evidence(
        f"https://{public_site}{deployment.privacy_path} -> {response.status_code}, "
        f"{response.headers.get('Content-Type')}, {len(response.content)} bytes"
    )
    assert response.status_code == 200, f"no notice at {deployment.privacy_path}"
    assert "text/html" in response.headers.get("Content-Type", "")
    assert re.search(r'<html[^>]*\blang="fr', response.text), "the notice is not marked French"
    for section in ("conservation", "hebergement", "droits", "registre"):
        assert f'id="{section}"' in response.text, f"the notice has no '{section}' section"


@pytest.mark.charter("C6")
def test_privacy_notice_states_retention_and_hosting(
    public_site: str,
    deployment: Deployment,
    policies: Policies,
    ca_bundle: str,
    evidence: Callable[[str], None],
) -> None:
    body = _notice(public_site, deployment, ca_bundle).text
    text = _text(body)
    problems = retention_row_problems(body, policies.retention)
    wrong = {p.split(":", 1)[0] for p in problems}
    countries = [COUNTRY_NAMES.get(c, c) for c in policies.countries_allowed]
    evidence(
        f"https://{public_site}{deployment.privacy_path} : "
        f"{len(policies.retention) - len(wrong)}/{len(policies.retention)} "
        "catégories de conservation indiquées chacune avec sa durée sur sa ligne ; "
        "hébergement : " + ", ".join(c for c in countries if c in text)
    )
    assert not problems, "retention not stated per category: " + "; ".join(problems)
    assert any(c in text for c in countries), "the hosting country is not stated"


@pytest.mark.charter("C9")
def test_privacy_notice_gives_reporting_contact(
    public_site: str, deployment: Deployment, ca_bundle: str, evidence: Callable[[str], None]
) -> None:
    body = _notice(public_site, deployment, ca_bundle).text
    section = body.split('id="signalement"', 1)[1] if 'id="signalement"' in body else ""
    contact = re.search(r'href="mailto:([^"]+)"', section)
    evidence(
        f"https://{public_site}{deployment.privacy_path}#signalement: "
        + (f"mailto:{contact.group(1)}" if contact else "aucun contact de signalement")
    )
    assert contact, "the notice gives no way to report illicit content"
