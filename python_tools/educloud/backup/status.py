"""The agent's status file (/var/lib/educloud-backup/status.json), read and judged.

The agent rewrites it after every run (no secrets in it):

    {"host": "edu1", "repository": "rclone:",
     "last_run": {"started", "finished", "ok", "error", "snapshot_id", "duration_s",
                  "files_new", "data_added_bytes"},
     "snapshots": [{"id", "short_id", "time"}, ...],
     "keep": {"daily_days", "weekly_days", "monthly_days", "retention_days"}}

restic's `forget --keep-within-*` runs with the operators' daily `educloud backup forget
--apply` (the backup hosts may only append), so a snapshot may outlive `retention_days`
until the next one: by about a day. `review` tells the snapshots due at the next forget
from those overdue (older than the period plus that grace: forget is not doing its work).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from educloud.errors import EducloudError

STATUS_FILE = "/var/lib/educloud-backup/status.json"
# The daily timer's period, its randomized delay (15 min) and a run's own duration.
FORGET_GRACE = timedelta(hours=26)


class BackupError(EducloudError):
    """A backup host or its agent cannot be reached, or answers something unreadable."""


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime

    def age(self, now: datetime) -> timedelta:
        return now - self.time


@dataclass(frozen=True)
class LastRun:
    started: datetime | None
    finished: datetime | None
    ok: bool
    error: str = ""
    snapshot_id: str | None = None
    duration_s: float | None = None
    files_new: int | None = None
    data_added_bytes: int | None = None


@dataclass(frozen=True)
class BackupStatus:
    host: str
    repository: str
    last_run: LastRun | None
    snapshots: tuple[Snapshot, ...]
    keep: dict[str, int] = field(default_factory=dict)

    @property
    def oldest(self) -> Snapshot | None:
        return min(self.snapshots, key=lambda s: s.time, default=None)

    @property
    def newest(self) -> Snapshot | None:
        return max(self.snapshots, key=lambda s: s.time, default=None)


def parse_time(value: Any, where: str) -> datetime:
    """restic's and the agent's timestamps (RFC 3339, nanoseconds, Z or an offset) in UTC."""
    if not isinstance(value, str) or not value:
        raise BackupError(f"{where}: {value!r} is not a timestamp")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python keeps microseconds: cut restic's nanoseconds to six digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BackupError(f"{where}: {value!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise BackupError(f"{where}: {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _optional_time(value: Any, where: str) -> datetime | None:
    return None if value in (None, "") else parse_time(value, where)


def _optional_number(value: Any, where: str, kind: type[int] | type[float]) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BackupError(f"{where}: {value!r} is not a number")
    return kind(value)


def parse_snapshots(data: Any, where: str) -> tuple[Snapshot, ...]:
    """Snapshots as the status file or `restic snapshots --json` list them, oldest first."""
    if not isinstance(data, list):
        raise BackupError(f"{where}: snapshots must be a list")
    found = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BackupError(f"{where}: snapshot {index} has no id")
        snapshot_id = str(item["id"])
        found.append(
            Snapshot(
                snapshot_id,
                str(item.get("short_id") or snapshot_id[:8]),
                parse_time(item.get("time"), f"{where}: snapshot {snapshot_id[:8]}"),
            )
        )
    return tuple(sorted(found, key=lambda s: s.time))


def _last_run(data: Any, where: str) -> LastRun | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise BackupError(f"{where}: last_run must be a mapping")
    return LastRun(
        started=_optional_time(data.get("started"), f"{where}: last_run.started"),
        finished=_optional_time(data.get("finished"), f"{where}: last_run.finished"),
        ok=data.get("ok") is True,
        error=str(data.get("error") or ""),
        snapshot_id=str(data["snapshot_id"]) if data.get("snapshot_id") else None,
        duration_s=_optional_number(data.get("duration_s"), f"{where}: duration_s", float),
        files_new=_optional_number(data.get("files_new"), f"{where}: files_new", int),
        data_added_bytes=_optional_number(
            data.get("data_added_bytes"), f"{where}: data_added_bytes", int
        ),
    )


def parse_status(text: str, where: str) -> BackupStatus:
    """The status file's content; `where` names it in errors (host and path)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BackupError(f"{where}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise BackupError(f"{where}: must be a JSON object")
    keep = {} if data.get("keep") is None else data["keep"]
    if not isinstance(keep, dict):
        raise BackupError(f"{where}: keep must be a mapping")
    return BackupStatus(
        host=str(data.get("host") or ""),
        repository=str(data.get("repository") or ""),
        last_run=_last_run(data.get("last_run"), where),
        snapshots=parse_snapshots(
            [] if data.get("snapshots") is None else data["snapshots"], where
        ),
        keep={str(k): int(v) for k, v in keep.items() if isinstance(v, int | float)},
    )


@dataclass(frozen=True)
class RetentionReview:
    """A backup host's snapshots against the backups period of retention.yml."""

    host: str
    retention_days: int
    count: int
    oldest: Snapshot | None
    past: tuple[Snapshot, ...]  # older than the period: due at the next forget
    overdue: tuple[Snapshot, ...]  # older than the period plus a run's grace: not forgotten
    last_run: LastRun | None

    @property
    def ok(self) -> bool:
        return not self.overdue and self.last_run is not None and self.last_run.ok

    def summary(self) -> str:
        """One line, in English, for the operator's tools."""
        if not self.count:
            said = f"{self.host}: no snapshot"
        else:
            assert self.oldest is not None
            said = (
                f"{self.host}: {self.count} snapshot{'s' if self.count > 1 else ''}, oldest "
                f"{self.oldest.time:%Y-%m-%d %H:%M} UTC"
            )
        if self.overdue:
            said += (
                f"; {len(self.overdue)} older than {self.retention_days} days and not "
                f"forgotten ({', '.join(s.short_id for s in self.overdue)}): forget is not "
                "running"
            )
        elif self.past:
            said += (
                f"; {len(self.past)} past {self.retention_days} days, due at the next forget "
                f"({', '.join(s.short_id for s in self.past)})"
            )
        else:
            said += f"; none older than {self.retention_days} days"
        run = self.last_run
        if run is None:
            said += "; never run"
        elif run.ok:
            when = f" {run.finished:%Y-%m-%d %H:%M} UTC" if run.finished else ""
            said += f"; last run ok{when}"
        else:
            said += f"; last run FAILED: {run.error or 'no message'}"
        return said


def review(
    status: BackupStatus,
    retention_days: int,
    now: datetime,
    *,
    grace: timedelta = FORGET_GRACE,
) -> RetentionReview:
    period = timedelta(days=retention_days)
    past = tuple(s for s in status.snapshots if s.age(now) > period)
    overdue = tuple(s for s in past if s.age(now) > period + grace)
    return RetentionReview(
        host=status.host,
        retention_days=retention_days,
        count=len(status.snapshots),
        oldest=status.oldest,
        past=past,
        overdue=overdue,
        last_run=status.last_run,
    )


StatusReader = Callable[[], BackupStatus | None]
"""Reads one backup host's status file; None when the agent never ran there."""


def local_reader(path: Path = Path(STATUS_FILE)) -> StatusReader:
    """This server's own status file (the retention timer on a backup host)."""

    def read() -> BackupStatus | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror}") from None
        return parse_status(text, str(path))

    return read


def local_readers(path: Path = Path(STATUS_FILE)) -> list[tuple[str, StatusReader]]:
    """This server, when it is a backup host (its agent has a state directory here)."""
    if not path.parent.is_dir():
        return []
    return [(socket.gethostname(), local_reader(path))]
