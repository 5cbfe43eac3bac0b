"""The break catalogue (tests/lab/breaks/*.yml) is well formed and covers the charter.

The breaks themselves run on the live lab (tests/lab/test_break_catalogue.py); this only
reads the data, so that a malformed entry or a thin guarantee fails before any lab exists.
"""

from __future__ import annotations

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
    with pytest.raises(ValueError, match="missing expect, restore"):
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
                    }
                ]
            }
        )
    )
    with pytest.raises(ValueError, match="an ssh step needs host and command"):
        breaks.load(tmp_path)
