"""`educloud stats` (C12): no printed count is small, and no suppressed one can be recovered.

The property tests draw populations of schools and check the printed output (tables and
JSON) the way a reader would attack it: every count is either at or above the threshold
or a label, and for each suppressed count between 1 and threshold-1 an exhaustive search,
written independently of the library's own audit, finds another population that prints
the same thing and gives that cell another value.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from educloud import policy
from educloud.accounts.model import Profile
from educloud.cli.data_rights import print_statistics
from educloud.errors import EducloudError
from educloud.paths import policies_dir
from educloud.stats import aggregate as stats
from educloud.stats.aggregate import (
    MASKED,
    NOT_MEASURED,
    AccountUsage,
    Statistics,
    aggregate,
    small_label,
)

Counts = tuple[tuple[int, int], ...]  # per profile: (accounts, active)


def population(schools: dict[str, Counts], storage: int | None = None) -> list[AccountUsage]:
    people = []
    for uai, counts in schools.items():
        for profile, (accounts, active) in zip(stats.PROFILES, counts, strict=True):
            people += [
                AccountUsage(uai, profile, active=i < active, storage_bytes=storage)
                for i in range(accounts)
            ]
    return people


@st.composite
def schools_and_threshold(draw: st.DrawFn) -> tuple[dict[str, Counts], int]:
    threshold = draw(st.integers(min_value=3, max_value=12))
    count = st.integers(min_value=0, max_value=3 * threshold)
    schools = {}
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        counts = []
        for _profile in stats.PROFILES:
            accounts = draw(count)
            counts.append((accounts, draw(st.integers(min_value=0, max_value=accounts))))
        schools[f"07500{n:02d}X"] = tuple(counts)
    return schools, threshold


def printed_table_cells(result: Statistics) -> Iterator[str]:
    """The count cells (accounts, active) of the tables as the CLI prints them."""
    out = Console(file=io.StringIO(), width=200, color_system=None)
    print_statistics(result, out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0] in (*stats.PROFILE_LABELS.values(), stats.TOTAL_LABEL):
            yield from cells[1:3]


def assert_no_small_count(cell: object, threshold: int) -> None:
    if isinstance(cell, int):
        assert cell >= threshold, f"count {cell} printed, under {threshold}"
    else:
        assert cell in (small_label(threshold), MASKED), cell


@settings(max_examples=150, deadline=None)
@given(schools_and_threshold())
def test_stats_never_print_a_count_below_the_threshold(
    drawn: tuple[dict[str, Counts], int],
) -> None:
    schools, threshold = drawn
    result = aggregate(
        population(schools), threshold=threshold, active_days=30, storage_measured=False
    )
    as_json = json.loads(json.dumps(result.as_dict()))
    for school in as_json["schools"]:
        for row in school["rows"]:
            assert_no_small_count(row["accounts"], threshold)
            assert_no_small_count(row["active"], threshold)
    for cell in printed_table_cells(result):
        if re.fullmatch(r"\d+", cell):
            assert int(cell) >= threshold, f"table prints {cell}, under {threshold}"
        else:
            assert cell in (small_label(threshold), MASKED), cell


# -- the reader's attack: an exhaustive search for another population ---------------------


def _domain(cell: object, truth: int, threshold: int, spread: int = 3) -> range:
    """Values a reader cannot rule out for one printed cell, near the truth (a finite
    window is enough to show that a cell has more than one possible value)."""
    if isinstance(cell, int):
        return range(cell, cell + 1)
    low, high = (0, threshold - 1) if cell == small_label(threshold) else (threshold, 10**9)
    return range(max(low, truth - spread), min(high, truth + spread) + 1)


def _column_solutions(printed: list[object], truth: list[int], threshold: int) -> list[tuple]:
    """Every column (profile rows then total) that prints as `printed`."""
    *member_cells, total_cell = printed
    domains = [_domain(c, t, threshold) for c, t in zip(member_cells, truth, strict=False)]
    total_domain = _domain(total_cell, truth[-1], threshold)
    return [
        (*values, sum(values))
        for values in itertools.product(*domains)
        if sum(values) in total_domain
    ]


def recoverable_cells(school: dict, truth: Counts, threshold: int) -> list[str]:
    """Suppressed counts in 1..threshold-1 that every population printing `school` shares."""
    rows = school["rows"]
    accounts_truth = [a for a, _ in truth] + [sum(a for a, _ in truth)]
    active_truth = [b for _, b in truth] + [sum(b for _, b in truth)]
    printed_accounts = [r["accounts"] for r in rows]
    printed_active = [r["active"] for r in rows]
    if all(c == MASKED for c in printed_accounts + printed_active):
        return []  # nothing published about this school
    targets = {
        (column, i)
        for column, printed, truths in (
            ("accounts", printed_accounts, accounts_truth),
            ("active", printed_active, active_truth),
        )
        for i, (cell, value) in enumerate(zip(printed, truths, strict=True))
        if not isinstance(cell, int) and 1 <= value < threshold
    }
    seen: dict[tuple[str, int], set[int]] = {target: set() for target in targets}
    accounts_options = _column_solutions(printed_accounts, accounts_truth, threshold)
    active_options = _column_solutions(printed_active, active_truth, threshold)
    for accounts in accounts_options:
        for active in active_options:
            if any(a > n for a, n in zip(active, accounts, strict=True)):
                continue
            for column, i in targets:
                seen[(column, i)].add((accounts if column == "accounts" else active)[i])
            if all(len(values) > 1 for values in seen.values()):
                return []
    return [f"{column} of {rows[i]['profile']}" for (column, i), v in seen.items() if len(v) < 2]


@settings(max_examples=150, deadline=None)
@given(schools_and_threshold())
def test_suppressed_cells_cannot_be_recovered_from_totals(
    drawn: tuple[dict[str, Counts], int],
) -> None:
    schools, threshold = drawn
    result = aggregate(
        population(schools), threshold=threshold, active_days=30, storage_measured=False
    )
    for school in result.as_dict()["schools"]:
        assert isinstance(school, dict)
        recovered = recoverable_cells(school, schools[school["uai"]], threshold)
        assert not recovered, f"{school['uai']}: {recovered} can be worked out"


def test_line_rule_alone_would_leak_two_cells_at_the_threshold() -> None:
    """9 + 9 under a printed total of 18: the audit must hide that total."""
    schools: dict[str, Counts] = {"0750001A": ((9, 9), (9, 9), (0, 0), (0, 0))}
    result = aggregate(population(schools), threshold=10, active_days=30, storage_measured=False)
    total = result.schools[0].rows[-1]
    assert total.accounts == MASKED and total.active == MASKED
    assert recoverable_cells(result.as_dict()["schools"][0], schools["0750001A"], 10) == []  # type: ignore[index]


def test_small_profile_is_hidden_with_a_companion() -> None:
    schools: dict[str, Counts] = {"0750001A": ((400, 300), (30, 25), (6, 5), (0, 0))}
    result = aggregate(population(schools), threshold=10, active_days=30, storage_measured=False)
    rows = {row.profile: row for row in result.schools[0].rows}
    assert rows["élèves"].accounts == 400
    assert rows["personnels"].accounts == "< 10"
    assert rows["enseignants"].accounts == MASKED  # else 436 - 400 - 30 gives the staff
    assert rows["total"].accounts == 436
    assert rows["total"].storage == NOT_MEASURED


def test_storage_is_masked_where_the_accounts_are() -> None:
    schools: dict[str, Counts] = {"0750001A": ((400, 300), (30, 25), (6, 5), (0, 0))}
    result = aggregate(
        population(schools, storage=2_000_000),
        threshold=10,
        active_days=30,
        storage_measured=True,
    )
    rows = {row.profile: row for row in result.schools[0].rows}
    assert rows["élèves"].storage == "800 Mo"
    assert rows["personnels"].storage == MASKED
    assert rows["enseignants"].storage == MASKED
    assert rows["total"].storage == "872 Mo"


def test_accounts_without_a_school_are_counted_apart() -> None:
    people = [AccountUsage("", Profile.STAFF, active=True)] * 12
    result = aggregate(people, threshold=10, active_days=30, storage_measured=False)
    assert result.schools[0].uai == stats.NO_SCHOOL
    assert result.schools[0].rows[-1].accounts == 12


def test_threshold_under_three_is_refused() -> None:
    with pytest.raises(EducloudError, match="at least 3"):
        aggregate([], threshold=2, active_days=30, storage_measured=False)


# -- the policy ---------------------------------------------------------------------------


def test_statistics_policy_default_threshold_is_ten() -> None:
    assert policy.load_statistics().small_count_threshold == 10


def test_policy_copy_without_statistics_file_gets_the_defaults(tmp_path: Path) -> None:
    assert policy.load_statistics(tmp_path) == policy.StatisticsPolicy()


def test_statistics_threshold_of_one_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((policies_dir() / "statistics.yml").read_text(encoding="utf-8"))
    data["small_count_threshold"] = 1
    (tmp_path / "statistics.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(policy.PolicyError, match="small_count_threshold"):
        policy.load_statistics(tmp_path)
