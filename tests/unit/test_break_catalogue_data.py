"""The break catalogue (tests/lab/breaks/*.yml) is well formed and covers the charter.

The breaks themselves run on the live lab (tests/lab/test_break_catalogue.py); this only
reads the data, so that a malformed entry or a thin guarantee fails before any lab exists.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from tests.lab import breaks

from educloud.policy import load

# Guarantees whose every check needs Nextcloud (not installable on these machines) would be
# listed here with the reason; none is today.
NOT_BREAKABLE_HERE: dict[str, str] = {}


def test_catalogue_loads_and_each_break_is_complete() -> None:
    catalogue = breaks.load()
    for broken in catalogue:
        assert broken.what and broken.apply, broken.id
        assert broken.restore or broken.snapshot, f"{broken.id}: nothing restores it"
        re.compile(broken.expect)
    assert len({b.id for b in catalogue}) == len(catalogue)


def test_catalogue_covers_every_technical_guarantee() -> None:
    """At least three distinct breaks for each technical guarantee, 40 in all."""
    counts: dict[str, int] = {}
    for broken in breaks.load():
        counts[broken.guarantee] = counts.get(broken.guarantee, 0) + 1
    technical = [g.id for g in load().guarantees if g.technical]
    thin = {
        g: counts.get(g, 0)
        for g in technical
        if counts.get(g, 0) < 3 and g not in NOT_BREAKABLE_HERE
    }
    assert not thin, f"guarantees with fewer than 3 breaks: {thin}"
    assert sum(counts.values()) >= 40
    assert set(counts) <= set(technical), "a break names a guarantee that is not technical"


def test_malformed_break_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_text(
        yaml.safe_dump({"breaks": [{"id": "x", "guarantee": "C5", "what": "w", "apply": []}]})
    )
    with pytest.raises(ValueError, match="missing checks, expect, restore"):
        breaks.load(tmp_path)
    (tmp_path / "x.yml").write_text(
        yaml.safe_dump(
            {
                "breaks": [
                    {
                        "id": "x",
                        "guarantee": "C5",
                        "what": "w",
                        "apply": [{"ssh": {"host": "edu1"}}],
                        "restore": [{"ssh": {"host": "edu1", "command": "true"}}],
                        "expect": "x",
                        "checks": ["test_x"],
                    }
                ]
            }
        )
    )
    with pytest.raises(ValueError, match="an ssh step needs host and command"):
        breaks.load(tmp_path)


def _charter_checks() -> dict[str, set[str]]:
    """Every check function of tests/charter and the guarantees its charter mark names."""
    found: dict[str, set[str]] = {}
    for path in (Path(__file__).parents[1] / "charter").glob("test_*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith(
                    "mark.charter"
                ):
                    found.setdefault(node.name, set()).update(
                        str(a.value) for a in decorator.args if isinstance(a, ast.Constant)
                    )
    return found


def test_each_break_names_checks_of_its_guarantee() -> None:
    """A break runs only the checks it names: each must be a check of its guarantee, or the
    lab run would select nothing, or another guarantee's check."""
    checks = _charter_checks()
    assert checks, "no charter check found"
    wrong = {
        b.id: [c for c in b.checks if b.guarantee not in checks.get(c, set())]
        for b in breaks.load()
    }
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"checks not found among their guarantee's: {wrong}"


def test_a_break_without_checks_is_refused(tmp_path: Path) -> None:
    entry = {
        "id": "x",
        "guarantee": "C5",
        "what": "w",
        "apply": [{"ssh": {"host": "edu1", "command": "true"}}],
        "restore": [{"ssh": {"host": "edu1", "command": "true"}}],
        "expect": "x",
    }
    for checks in ([], ["not a name"], "test_x"):
        (tmp_path / "x.yml").write_text(yaml.safe_dump({"breaks": [entry | {"checks": checks}]}))
        with pytest.raises(ValueError, match="checks is a non-empty list"):
            breaks.load(tmp_path)
