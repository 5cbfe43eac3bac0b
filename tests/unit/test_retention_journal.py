"""The retention journal's hash chain detects every edit, removal and reordering (C7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from educloud.retention import journal
from educloud.retention.journal import Journal, JournalError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _write(path: Path, count: int, start: datetime = T0) -> None:
    with Journal(path) as log:
        for index in range(count):
            log.append(
                "erased",
                category="accounts",
                subject=f"user{index}",
                detail={"n": index, "nom": "Élodie"},
                at=start + timedelta(days=index),
            )


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_an_intact_journal_verifies(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 5)
    assert journal.verify(path) == []
    assert [e["seq"] for e in journal.entries(path)] == [1, 2, 3, 4, 5]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_appends_continue_the_chain_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 2)
    _write(path, 2, start=T0 + timedelta(days=10))
    assert journal.verify(path) == []
    assert [e["seq"] for e in journal.entries(path)] == [1, 2, 3, 4]


def test_an_edited_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 4)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["subject"] = "someone-else"
    lines[1] = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    problems = journal.verify(path)
    assert problems and problems[0].startswith("line 2: edited")


def test_an_edited_line_with_its_hash_recomputed_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 4)
    lines = _lines(path)
    entry = json.loads(lines[1])
    entry["detail"] = {"n": 99}
    entry["hash"] = journal.entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert any(p.startswith("line 3: does not follow") for p in journal.verify(path))


@pytest.mark.parametrize("index", [0, 2, 4])
def test_a_missing_line_is_detected(tmp_path: Path, index: int) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 5)
    lines = _lines(path)
    del lines[index]
    path.write_text("".join(lines), encoding="utf-8")
    assert journal.verify(path), f"removing line {index + 1} went unnoticed"


def test_swapped_lines_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 4)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines), encoding="utf-8")
    assert journal.verify(path)


def test_a_garbage_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 3)
    with open(path, "a", encoding="utf-8") as out:
        out.write("not json\n")
    assert any("not a journal entry" in p for p in journal.verify(path))


def test_appending_to_a_broken_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 3)
    path.write_text("".join(_lines(path)[1:]), encoding="utf-8")
    with pytest.raises(JournalError, match="does not verify"):
        _write(path, 1)


def test_a_torn_last_line_is_cut_and_the_chain_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 2)
    head = (tmp_path / "journal.jsonl.head").read_text()
    with open(path, "a", encoding="utf-8") as out:
        out.write('{"seq": 3, "at": "2026')  # a crash in the middle of an append
    (tmp_path / "journal.jsonl.head").write_text(head)
    _write(path, 1, start=T0 + timedelta(days=5))
    assert journal.verify(path) == []
    assert [e["seq"] for e in journal.entries(path)] == [1, 2, 3]


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path), pytest.raises(JournalError, match="in use"), Journal(path):
        pass


def test_pruning_keeps_a_verifiable_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 6)
    with Journal(path) as log:
        assert log.prune(T0 + timedelta(days=3)) == 3
    assert journal.verify(path) == []
    kept = list(journal.entries(path))
    assert [e["action"] for e in kept] == ["journal_pruned", "erased", "erased", "erased"]
    assert kept[0]["detail"]["dropped"] == 3
    # Appending after a prune, and pruning again, keep the chain.
    _write(path, 1, start=T0 + timedelta(days=20))
    with Journal(path) as log:
        assert log.prune(T0 + timedelta(days=5)) == 2
        assert log.prune(T0 + timedelta(days=5)) == 0
    assert journal.verify(path) == []
    with Journal(path) as log:
        assert log.prune(T0 + timedelta(days=30)) == 2
        log.append("erased", category="accounts", subject="late", at=T0 + timedelta(days=31))
    assert journal.verify(path) == []


def test_a_removed_pruning_anchor_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write(path, 4)
    with Journal(path) as log:
        log.prune(T0 + timedelta(days=2))
    path.write_text("".join(_lines(path)[1:]), encoding="utf-8")
    assert journal.verify(path) == ["line 1: the journal's beginning is missing"]
