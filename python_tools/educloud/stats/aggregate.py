"""Aggregated usage statistics (C12): per school and profile, small counts suppressed.

The input is one `AccountUsage` per account; it never leaves this module. The output,
`Statistics`, holds only cells that may be printed: a count at or above the threshold, a
suppression label, or a storage size of a group at or above the threshold. Nothing in it
is about one person, so whatever prints it cannot single out a pupil.

Each school is a table: one row per profile and a total row; columns accounts, active
accounts (logged in within the policy's window) and storage used. The suppression rules,
with t the threshold of policies/statistics.yml:

1. Primary suppression. A count under t, zero included, is printed "< t".
2. Complementary suppression, line by line. In a column, the profile rows add up to the
   total: with one row suppressed and the total printed, subtracting would give it back.
   So when a line has a suppressed row and a printed total, the smallest row at or above
   t is suppressed as well ("masqué"): the reader learns the sum of the suppressed rows,
   and since one of them has no upper bound but the total, not the value of any. When
   every row is under t the total is suppressed instead: with the bound "< t" on each row
   their sum could pin them (9 + 9 = 18 with t = 10 leaves only 9 and 9).
3. Audit of the whole school. The columns are tied as well (a profile's active accounts
   are at most its accounts), which rule 2 does not see. For every suppressed count
   whose value is between 1 and t-1, the audit looks for another table that agrees with
   every printed cell and label (a "< t" cell is in 0..t-1, a "masqué" one at least t),
   every total and every "active <= accounts" constraint, and differs in that cell; it
   tries moving each suppressed cell by -1, 0 or +1. Finding one proves the cell cannot be
   worked out. If one cell has no such twin, the school's totals are suppressed too; if
   one still has none, every cell of the school is masked.

Storage follows the accounts column: a row's storage is masked when its accounts are, the
total's when the accounts total is; sizes have no upper bound, so two masked rows with a
known sum reveal neither. No total across schools is printed, so a school's suppressed
cells cannot be recovered from the others'. What may still be deduced is a suppressed
zero (a school whose masked companion equals t exactly): it says nobody, so it singles
nobody out. Not handled: a group of t or more whose storage is almost all one person's
(a dominance rule); sizes are rounded to the megabyte.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from educloud.accounts.model import Profile
from educloud.errors import EducloudError

PROFILE_LABELS: dict[Profile, str] = {
    Profile.PUPIL: "élèves",
    Profile.TEACHER: "enseignants",
    Profile.STAFF: "personnels",
    Profile.PARENT: "parents",
}
PROFILES: tuple[Profile, ...] = tuple(PROFILE_LABELS)
TOTAL_LABEL = "total"
MASKED = "masqué"
NOT_MEASURED = "non mesuré"
NO_SCHOOL = "sans établissement"

Cell = int | str
"""A printed count: an int at or above the threshold, or a label ("< 10", "masqué")."""


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """One account's usage: the input of `aggregate`, never part of its output."""

    uai: str  # "" for an account in no school
    profile: Profile
    active: bool
    storage_bytes: int | None = None  # None: not measured


@dataclass(frozen=True)
class Row:
    profile: str  # PROFILE_LABELS value or TOTAL_LABEL
    accounts: Cell
    active: Cell
    storage: str  # a size ("12 Mo", "1,5 Go"), MASKED or NOT_MEASURED


@dataclass(frozen=True)
class SchoolStats:
    uai: str  # or NO_SCHOOL
    rows: tuple[Row, ...]  # one per profile, then the total


@dataclass(frozen=True)
class Statistics:
    threshold: int
    active_days: int
    storage_measured: bool
    schools: tuple[SchoolStats, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "active_days": self.active_days,
            "storage_measured": self.storage_measured,
            "schools": [
                {
                    "uai": school.uai,
                    "rows": [
                        {
                            "profile": row.profile,
                            "accounts": row.accounts,
                            "active": row.active,
                            "storage": row.storage,
                        }
                        for row in school.rows
                    ],
                }
                for school in self.schools
            ],
        }


class _Mark(Enum):
    SHOWN = "shown"
    SMALL = "small"  # primary: printed "< t", value in 0..t-1
    MASKED = "masked"  # complementary: printed "masqué", value at least t


@dataclass
class _Table:
    """One school's true counts and what is printed of each: profile rows, then the total."""

    accounts: list[int]
    active: list[int]
    accounts_marks: list[_Mark]
    active_marks: list[_Mark]


def small_label(threshold: int) -> str:
    return f"< {threshold}"


def _line_marks(values: Sequence[int], threshold: int) -> list[_Mark]:
    """Rules 1 and 2 on one column: `values` are the profile rows then the total."""
    *members, total = values
    marks = [_Mark.SMALL if v < threshold else _Mark.SHOWN for v in values]
    if marks[-1] is _Mark.SMALL or _Mark.SMALL not in marks[:-1]:
        return marks
    shown = [i for i, _ in enumerate(members) if marks[i] is _Mark.SHOWN]
    if shown:
        companion = min(shown, key=lambda i: (members[i], i))
        marks[companion] = _Mark.MASKED
    else:
        marks[-1] = _Mark.MASKED
    assert sum(members) == total
    return marks


def _bounds(mark: _Mark, value: int, threshold: int) -> tuple[int, int | None]:
    """What a reader knows of a cell: its value if shown, else the range its label gives."""
    if mark is _Mark.SHOWN:
        return value, value
    if mark is _Mark.SMALL:
        return 0, threshold - 1
    return threshold, None


def _column_moves(values: Sequence[int], marks: Sequence[_Mark], t: int) -> list[tuple[int, ...]]:
    """Every way of moving the column's suppressed cells by -1, 0 or +1 that a reader could
    not tell from the truth: rows still add up to the total, each cell stays in its label's
    range. The zero move (the truth) is among them."""
    hidden = [i for i, mark in enumerate(marks) if mark is not _Mark.SHOWN]
    moves = []
    for steps in itertools.product((-1, 0, 1), repeat=len(hidden)):
        move = [0] * len(values)
        for index, step in zip(hidden, steps, strict=True):
            move[index] = step
        moved = [v + m for v, m in zip(values, move, strict=True)]
        if sum(moved[:-1]) != moved[-1]:
            continue
        if all(
            _within(mark, v, value, t) for mark, v, value in zip(marks, values, moved, strict=True)
        ):
            moves.append(tuple(move))
    return moves


def _within(mark: _Mark, true_value: int, value: int, t: int) -> bool:
    low, high = _bounds(mark, true_value, t)
    return value >= low and (high is None or value <= high)


def pinned_cells(table: _Table, threshold: int) -> list[tuple[str, int]]:
    """Suppressed counts in 1..t-1 for which no twin table was found (rule 3).

    Each is (column, row index). A twin moves every suppressed cell by -1, 0 or +1 and the
    cell in question by a non-zero step, keeps every total and label, and keeps each row's
    active accounts at most its accounts.
    """
    targets = {
        (column, i)
        for column, values, marks in (
            ("accounts", table.accounts, table.accounts_marks),
            ("active", table.active, table.active_marks),
        )
        for i, (value, mark) in enumerate(zip(values, marks, strict=True))
        if mark is not _Mark.SHOWN and 1 <= value < threshold
    }
    accounts_moves = _column_moves(table.accounts, table.accounts_marks, threshold)
    active_moves = _column_moves(table.active, table.active_marks, threshold)
    for accounts_move in accounts_moves:
        accounts = [v + m for v, m in zip(table.accounts, accounts_move, strict=True)]
        for active_move in active_moves:
            if not targets:
                return []
            active = [v + m for v, m in zip(table.active, active_move, strict=True)]
            if any(a > n for a, n in zip(active, accounts, strict=True)):
                continue
            targets -= {("accounts", i) for i, m in enumerate(accounts_move) if m}
            targets -= {("active", i) for i, m in enumerate(active_move) if m}
    return sorted(targets)


def suppress(accounts: Sequence[int], active: Sequence[int], threshold: int) -> _Table:
    """Rules 1 to 3 on one school's counts (profile rows then the total, in each column)."""
    table = _Table(
        list(accounts),
        list(active),
        _line_marks(accounts, threshold),
        _line_marks(active, threshold),
    )
    if not pinned_cells(table, threshold):
        return table
    for marks in (table.accounts_marks, table.active_marks):
        if marks[-1] is _Mark.SHOWN:
            marks[-1] = _Mark.MASKED
    if not pinned_cells(table, threshold):
        return table
    every = len(accounts)
    table.accounts_marks = [_Mark.MASKED] * every
    table.active_marks = [_Mark.MASKED] * every
    return table


def format_size(size: int) -> str:
    """A size in French units, rounded to the megabyte (1 Mo = 10^6 octets)."""
    megabytes = round(size / 1_000_000)
    if megabytes < 1000:
        return f"{megabytes} Mo"
    return f"{megabytes / 1000:.1f} Go".replace(".", ",")


def _cell(mark: _Mark, value: int, threshold: int) -> Cell:
    if mark is _Mark.SHOWN:
        return value
    return small_label(threshold) if mark is _Mark.SMALL else MASKED


def aggregate(
    usage: Iterable[AccountUsage], *, threshold: int, active_days: int, storage_measured: bool
) -> Statistics:
    """Count accounts, active accounts and storage per school and profile; suppress (C12)."""
    if threshold < 3:
        raise EducloudError(f"the small-count threshold must be at least 3, not {threshold}")
    by_school: dict[str, list[AccountUsage]] = {}
    for account in usage:
        by_school.setdefault(account.uai, []).append(account)
    schools = []
    for uai in sorted(by_school, key=lambda u: (u == "", u)):
        members = by_school[uai]
        accounts = [sum(1 for a in members if a.profile is p) for p in PROFILES]
        active = [sum(1 for a in members if a.profile is p and a.active) for p in PROFILES]
        storage = [sum(a.storage_bytes or 0 for a in members if a.profile is p) for p in PROFILES]
        table = suppress([*accounts, sum(accounts)], [*active, sum(active)], threshold)
        storage.append(sum(storage))
        labels = [*(PROFILE_LABELS[p] for p in PROFILES), TOTAL_LABEL]
        rows = []
        for i, label in enumerate(labels):
            if not storage_measured:
                size = NOT_MEASURED
            elif table.accounts_marks[i] is _Mark.SHOWN:
                size = format_size(storage[i])
            else:
                size = MASKED
            rows.append(
                Row(
                    profile=label,
                    accounts=_cell(table.accounts_marks[i], table.accounts[i], threshold),
                    active=_cell(table.active_marks[i], table.active[i], threshold),
                    storage=size,
                )
            )
        schools.append(SchoolStats(uai or NO_SCHOOL, tuple(rows)))
    return Statistics(threshold, active_days, storage_measured, tuple(schools))
