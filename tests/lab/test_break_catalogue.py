"""Every break of the catalogue (tests/lab/breaks/*.yml) is caught by `educloud verify`.

For each break, on the live lab: apply it; the verification of its guarantee (all its
checks) must say "échec" and a failing check must name what is broken (the break's
`expect`); restore it; the checks that failed must pass again, in the same test. After
the last break, the whole verification of every guarantee broken must be clean again
(test_every_guarantee_clean_after_the_breaks). The terminal summary prints, per guarantee, how
many breaks were caught (tests/lab/conftest.py).

Only the failing checks are run again after each restore (the whole guarantee once, at
the end): it halves the catalogue's time, and a restore that leaves anything else broken
is still caught by the final verification.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.lab import breaks

from educloud.charter import verify as verify_mod
from educloud.charter.report import GuaranteeResult
from educloud.paths import inventories_dir

pytestmark = pytest.mark.lab
CATALOGUE = breaks.load()


@pytest.fixture(scope="module")
def actions() -> Iterator[breaks.LabActions]:
    yield breaks.LabActions()


def _verdict(
    guarantee: str, hosts: tuple[str, ...], selection: str = "", workers: int = 2
) -> GuaranteeResult:
    with tempfile.TemporaryDirectory() as tmp:
        result = verify_mod.verify(
            inventories_dir() / "lab",
            Path(tmp),
            limit=",".join(hosts),
            workers=workers,
            guarantees=[guarantee],
            quiet=True,
            selection=selection,
        )
    assert not result.interrupted, result.interrupted
    (entry,) = result.report
    return entry


def _failures(entry: GuaranteeResult) -> list[str]:
    return [f"{c.case}: {c.message}" for c in entry.checks if c.outcome == "failed"]


@pytest.mark.parametrize("broken", CATALOGUE, ids=[b.id for b in CATALOGUE])
def test_break_is_caught(
    broken: breaks.Break,
    actions: breaks.LabActions,
    record_property: Callable[[str, object], None],
) -> None:
    # Read by tests/lab/conftest.py for the summary per guarantee (also across xdist workers).
    record_property("break_guarantee", broken.guarantee)
    with actions.applied(broken):
        entry = _verdict(broken.guarantee, broken.hosts)
    failures = _failures(entry)
    assert entry.status == "failed", (
        f"{broken.what}: {broken.guarantee} is {entry.status!r} with the break in force"
    )
    assert any(broken.matches(f) for f in failures), (
        f"{broken.what}: no failing check of {broken.guarantee} names it "
        f"(/{broken.expect}/): {failures}"
    )
    record_property("break_caught", "yes")
    failed = sorted({c.check.split("::")[1] for c in entry.checks if c.outcome == "failed"})
    restored = _verdict(broken.guarantee, broken.hosts, selection=" or ".join(failed), workers=1)
    again = {c.check.split("::")[1]: c.outcome for c in restored.checks if c.outcome != "skipped"}
    assert _failures(restored) == [] and set(again) >= set(failed), (
        f"after restoring {broken.id}, the checks {failed} of {broken.guarantee}: "
        f"{_failures(restored) or again}"
    )


GUARANTEES = sorted({b.guarantee for b in CATALOGUE}, key=lambda g: int(g[1:]))


def test_every_guarantee_clean_after_the_breaks() -> None:
    """Collected after the breaks (pytest keeps the file's order): every check of every
    guarantee the catalogue broke passes or could not run here, as before the first break.
    One verification of them all (one pytest run, as `educloud verify` makes it), not one
    per guarantee: the same checks, a twelfth of the start-up."""
    with tempfile.TemporaryDirectory() as tmp:
        result = verify_mod.verify(
            inventories_dir() / "lab", Path(tmp), workers=2, guarantees=GUARANTEES, quiet=True
        )
    assert not result.interrupted, result.interrupted
    dirty = {
        entry.id: _failures(entry)
        for entry in result.report
        if entry.status not in {"verified", "partial", "not_verifiable"}
    }
    assert not dirty, f"after the breaks were restored: {dirty}"
