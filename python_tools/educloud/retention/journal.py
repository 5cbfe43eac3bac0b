"""The retention journal: append-only JSON lines, each chained to the previous by a hash.

Every line holds `seq`, `at`, `action`, `category`, `subject`, `detail`, `prev` (the hash
of the previous entry) and `hash` (SHA-256 of the entry's canonical JSON without `hash`).
An edited line no longer matches its hash; a removed or reordered line breaks `prev` or
`seq`. A removed tail cannot break a chain by itself, so the head (last `seq` and `hash`)
is also written to `<journal>.head` after each append: verification compares both.

The journal is kept for the period of `retention_journal` in retention.yml: `prune`
rewrites it without the old entries, starting with a `journal_pruned` entry that records
the hash it continues from, so that the shortened journal still verifies.

Appends are fsync'ed before the action they record is reported done; a line torn by a
crash (no newline at the end) is cut before the next append and reported by `verify`
only if something follows it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from educloud.errors import EducloudError

GENESIS = "0" * 64
PRUNED = "journal_pruned"
_FIELDS = ("seq", "at", "action", "category", "subject", "detail", "prev")


class JournalError(EducloudError):
    """The journal cannot be read or written."""


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


def entry_hash(entry: dict[str, Any]) -> str:
    body = {key: entry.get(key) for key in _FIELDS}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temp, 0o600)
    temp.replace(path)
    _fsync_dir(path.parent)


def read_head(path: Path) -> Head | None:
    head = _head_path(path)
    if not head.exists():
        return None
    try:
        data = json.loads(head.read_text(encoding="utf-8"))
        return Head(int(data["seq"]), str(data["hash"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JournalError(f"{head}: unreadable journal head ({exc})") from None


class Journal:
    """An open journal; use as a context manager (it holds an exclusive lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None
        self._head: Head | None = None

    def __enter__(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise JournalError(f"{self.path} is in use by another run") from None
        self._cut_torn_line()
        self._head = self._last_head()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _cut_torn_line(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as journal:
            data = journal.read()
            if data and not data.endswith(b"\n"):
                journal.truncate(data.rfind(b"\n") + 1)
                journal.flush()
                os.fsync(journal.fileno())

    def _last_head(self) -> Head | None:
        last: dict[str, Any] | None = None
        for _number, entry, _raw in _lines(self.path):
            last = entry
        if last is None:
            return None
        problems = verify(self.path)
        if problems:
            raise JournalError(
                f"{self.path} does not verify, nothing appended: {problems[0]} "
                "(run `educloud retention journal verify`)"
            )
        return Head(int(last["seq"]), str(last["hash"]))

    def append(
        self,
        action: str,
        *,
        category: str,
        subject: str,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        if self._lock_fd is None:
            raise JournalError("the journal is not open")
        entry: dict[str, Any] = {
            "seq": (self._head.seq + 1) if self._head else 1,
            "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
            "action": action,
            "category": category,
            "subject": subject,
            "detail": detail or {},
            "prev": self._head.hash if self._head else GENESIS,
        }
        entry["hash"] = entry_hash(entry)
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._head = Head(entry["seq"], entry["hash"])
        _write_atomic(
            _head_path(self.path), json.dumps({"seq": entry["seq"], "hash": entry["hash"]})
        )
        return entry

    def prune(self, older_than: datetime) -> int:
        """Drop the entries recorded before `older_than`; returns how many were dropped."""
        entries = [entry for _n, entry, _raw in _lines(self.path)]
        old = [e for e in entries if datetime.fromisoformat(e["at"]) < older_than]
        # The anchor of a previous prune is replaced by the new one, not counted as dropped.
        dropped = [e for e in old if e["action"] != PRUNED]
        if not dropped:
            return 0
        kept = entries[len(old) :]
        if len(old) < len(entries) and any(
            datetime.fromisoformat(e["at"]) < older_than for e in kept
        ):
            # Entries are in time order; one that is not makes the cut ambiguous.
            raise JournalError(f"{self.path}: entries out of time order, not pruned")
        last_dropped = old[-1]
        anchor: dict[str, Any] = {
            "seq": last_dropped["seq"],
            "at": last_dropped["at"],
            "action": PRUNED,
            "category": "retention_journal",
            "subject": str(self.path.name),
            "detail": {"dropped": len(dropped), "before": older_than.isoformat()},
            "prev": last_dropped["hash"],
        }
        anchor["hash"] = entry_hash(anchor)
        # The entry after the anchor keeps its `prev`: it is the dropped entry's hash, which
        # the anchor carries as its own `prev`. Verification accepts exactly that link.
        text = "".join(
            json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in [anchor, *kept]
        )
        _write_atomic(self.path, text)
        if not kept:
            self._head = Head(anchor["seq"], anchor["hash"])
            _write_atomic(
                _head_path(self.path), json.dumps({"seq": anchor["seq"], "hash": anchor["hash"]})
            )
        return len(dropped)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any], str]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="strict") as journal:
        for number, raw in enumerate(journal, start=1):
            if not raw.endswith("\n"):
                return  # a torn last line: cut by the next append
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {"_unreadable": True}
            yield number, entry, raw


def verify(path: Path) -> list[str]:
    """Every problem in the chain, with its line number; an empty list means intact."""
    if not path.exists():
        return [] if read_head(path) is None else [f"{path}: missing, but its head exists"]
    problems: list[str] = []
    previous: dict[str, Any] | None = None
    try:
        for number, entry, _raw in _lines(path):
            if entry.get("_unreadable") or not all(key in entry for key in (*_FIELDS, "hash")):
                problems.append(f"line {number}: not a journal entry")
                previous = None
                continue
            if entry_hash(entry) != entry["hash"]:
                problems.append(f"line {number}: edited (its hash does not match its content)")
            if previous is None:
                if number == 1 and entry["prev"] != GENESIS and entry["action"] != PRUNED:
                    problems.append("line 1: the journal's beginning is missing")
            elif entry["prev"] == previous["hash"] and entry["seq"] == previous["seq"] + 1:
                pass
            elif previous["action"] == PRUNED and number == 2:
                # After a prune, the next entry follows the last dropped one (whose hash the
                # anchor keeps as `prev`), or the anchor itself when nothing was kept.
                if (
                    entry["prev"] not in (previous["prev"], previous["hash"])
                    or entry["seq"] != previous["seq"] + 1
                ):
                    problems.append(f"line {number}: does not follow the pruning anchor")
            else:
                problems.append(
                    f"line {number}: does not follow line {number - 1} "
                    "(a line was removed, inserted or moved)"
                )
            previous = entry
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 ({exc.reason})")
        return problems
    head = read_head(path)
    if head is not None:
        if previous is None:
            problems.append(f"the journal is empty but its head records entry {head.seq}")
        elif (previous.get("seq"), previous.get("hash")) != (head.seq, head.hash):
            problems.append(
                f"the last entry is {previous.get('seq')} but the head records {head.seq} "
                "(entries removed at the end, or the head edited)"
            )
    elif previous is not None:
        problems.append(f"{_head_path(path)} is missing")
    return problems


def entries(path: Path) -> Iterator[dict[str, Any]]:
    for _number, entry, _raw in _lines(path):
        yield entry
