"""How long security updates have waited on a host (C10), from what the host observed.

The host side is one script, roles/common/files/educloud_security_updates.py (the common
role installs it as /usr/local/sbin/educloud-security-updates). The charter check runs this
checkout's copy of it on the host (`observe`: what is pending now, whatever the host's own
copy has become) and reads the host's record of earlier observations.

How "pending since" is measured, and why stopping or deleting things does not hide an update:

- **Pending**: an installed package has a newer version in an index of Debian's security
  archive for the host's release (Origin Debian, Label Debian-Security, Codename
  bookworm-security). Every version apt knows is compared, so a hold (`apt-mark hold`) or
  a pin that keeps the update away does not hide it.
- **Since**: apt's hooks append an observation to the record after every list update and
  after the dpkg runs that can change the answer. A package waits since the first entry of
  the unbroken run of entries, ending with the last one, that list it as pending: the entry
  just before proves it was not pending then. That is when the host first knew of the
  update (its lists are refreshed twice a day), so the age is a lower bound, never a guess.
  A newer security version replacing the pending one does not reset the wait: the package
  has gone without a security fix all along.
- **Unknown is a failure**: an update listed since the record's very first entry (a record
  deleted and started again, or one that began with the update already pending), absent
  from the last entry (a hook that did not run, a downgrade with dpkg alone), or first seen
  at a date after the host's clock, has no start the check can stand behind: it fails,
  named, instead of passing for want of evidence.
- **The record must be current**: its last entry must have seen the same security indexes
  apt holds now; otherwise apt updated its lists without the hook (removed or broken).
- **The host must be able to know**: the oldest security index apt holds must be younger
  than the policy's period (it carries the date Debian published it), or the host cannot
  tell what is pending.

The record does not defend against root forging it, no more than any file on the host; it
defends against neglect and accidents: a held package, a stopped timer, a deleted record, a
removed hook, lists no longer refreshed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from educloud import hostscripts

TOOL_MODULE = "educloud_security_updates"
# An entry dated later than the host's clock by more than this cannot date anything.
CLOCK_TOLERANCE = timedelta(minutes=10)


def tool_path() -> Path:
    """The host script, as this checkout has it."""
    return hostscripts.path("common", TOOL_MODULE)


def tool_source() -> str:
    """Its source, for `python3 -c SOURCE observe` on a host."""
    return tool_path().read_text(encoding="utf-8")


def load_tool() -> ModuleType:
    """The host script as a module (it imports python3-apt only inside `observe`)."""
    return hostscripts.load("common", TOOL_MODULE)


def record_path() -> str:
    """Where the host keeps its record (the tool's RECORD)."""
    return str(load_tool().RECORD)


@dataclass(frozen=True)
class PendingUpdate:
    package: str
    installed: str
    security: str

    def __str__(self) -> str:
        return f"{self.package} {self.installed} (Debian-Security has {self.security})"


@dataclass(frozen=True)
class Observation:
    """One observation of the host tool: the record's entries and `observe` alike."""

    at: datetime
    indexes: Mapping[str, datetime | None]  # Release file -> its Date (None: undated)
    pending: Mapping[str, PendingUpdate]


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"no time zone: {value!r}")
    return moment


def parse_observation(data: Any) -> Observation:
    """An observation from its JSON form; ValueError when it is not one."""
    if not isinstance(data, Mapping):
        raise ValueError("an observation is a JSON object")
    indexes = data.get("indexes", {})
    pending = data.get("pending", {})
    if not isinstance(indexes, Mapping) or not isinstance(pending, Mapping):
        raise ValueError("indexes and pending are JSON objects")
    updates = {}
    for name, versions in pending.items():
        if not isinstance(versions, Mapping):
            raise ValueError(f"pending {name}: not an object")
        updates[str(name)] = PendingUpdate(
            str(name), str(versions.get("installed", "?")), str(versions.get("security", "?"))
        )
    return Observation(
        at=_moment(data.get("at")),
        indexes={str(k): (_moment(v) if v else None) for k, v in indexes.items()},
        pending=updates,
    )


@dataclass(frozen=True)
class Record:
    entries: tuple[Observation, ...]
    unreadable: int  # lines that were not an observation (skipped: that can only lengthen a wait)


def parse_record(text: str) -> Record:
    """The host's record, one JSON observation a line."""
    entries, unreadable = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entries.append(parse_observation(json.loads(line)))
        except ValueError:
            unreadable += 1
    return Record(tuple(entries), unreadable)


@dataclass(frozen=True)
class Waiting:
    """A pending update and since when the record shows it pending (None: unknown, why)."""

    update: PendingUpdate
    since: datetime | None
    days: float | None
    unknown: str = ""


@dataclass(frozen=True)
class Assessment:
    oldest_index: datetime | None
    waiting: tuple[Waiting, ...]
    problems: tuple[str, ...]


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def first_seen(
    package: str, entries: Sequence[Observation], now: datetime
) -> tuple[datetime | None, str]:
    """When the record's last unbroken run of entries listing `package` as pending began,
    or None and why that cannot be told."""
    if not entries:
        return None, "the host keeps no record of pending security updates"
    if package not in entries[-1].pending:
        return None, f"absent from the record's last entry ({_day(entries[-1].at)})"
    start = len(entries) - 1
    while start > 0 and package in entries[start - 1].pending:
        start -= 1
    if start == 0:
        return None, f"pending since the record's first entry ({_day(entries[0].at)})"
    since = entries[start].at
    if since > now + CLOCK_TOLERANCE:
        return None, f"first seen at {_day(since)}, after the host's clock"
    return since, ""


def assess(
    live: Observation,
    record: Sequence[Observation],
    *,
    max_pending_days: int,
    now: datetime,
    record_path: str = "the record",
) -> Assessment:
    """Everything wrong with a host's security updates: indexes too old to know, a record
    not kept, and each update that has waited past `max_pending_days` or since an unknown
    date (named). `live` is the observation made now on the host (its clock dates the
    waits); `now` is the checker's clock (it dates Debian's indexes)."""
    problems: list[str] = []
    dated = [d for d in live.indexes.values() if d is not None]
    oldest = min(dated) if dated else None
    if not live.indexes:
        problems.append(
            "apt holds no index of Debian's security archive for this release "
            "(deb .../debian-security <release>-security main): the host cannot see its "
            "security updates"
        )
    elif len(dated) < len(live.indexes):
        undated = sorted(k for k, v in live.indexes.items() if v is None)
        problems.append(f"security index without a Date: {', '.join(undated)}")
    if oldest is not None and now - oldest > timedelta(days=max_pending_days):
        problems.append(
            f"apt's list of security updates dates from {_day(oldest)} "
            f"({(now - oldest).days} days ago, the policy allows {max_pending_days}): the host "
            "cannot know which security updates are pending (apt-daily.timer, the mirror?)"
        )
    if not record:
        problems.append(
            f"no record of pending security updates ({record_path} is missing or empty)"
        )
    elif dict(record[-1].indexes) != dict(live.indexes):
        problems.append(
            f"{record_path} was not written after apt's last list update (its last entry, "
            f"{_day(record[-1].at)}, saw other security indexes): is apt's hook "
            "/etc/apt/apt.conf.d/99educloud-security-updates in place?"
        )
    waiting = []
    for name in sorted(live.pending):
        update = live.pending[name]
        since, unknown = first_seen(name, record, live.at)
        if since is None:
            waiting.append(Waiting(update, None, None, unknown))
            problems.append(
                f"{update} pending since an unknown date: {unknown}; how long it has "
                "waited cannot be told"
            )
            continue
        days = (live.at - since).total_seconds() / 86400
        waiting.append(Waiting(update, since, days))
        if days > max_pending_days:
            problems.append(
                f"{update} pending for {int(days)} days (first seen {_day(since)}), more than "
                f"the {max_pending_days} days the policy allows"
            )
    return Assessment(oldest, tuple(waiting), tuple(problems))


def evidence(host: str, assessment: Assessment, record: Record, max_pending_days: int) -> str:
    """What the check saw, in French for the report."""
    index = (
        f"index Debian-Security du {assessment.oldest_index:%Y-%m-%d %H:%M} UTC"
        if assessment.oldest_index
        else "aucun index Debian-Security daté"
    )
    if assessment.waiting:
        waits = ", ".join(
            f"{w.update.package} {w.update.installed} → {w.update.security} "
            + (f"depuis {w.days:.1f} j" if w.days is not None else "depuis une date inconnue")
            for w in assessment.waiting
        )
        pending = f"{len(assessment.waiting)} mise(s) à jour de sécurité en attente : {waits}"
    else:
        pending = "aucune mise à jour de sécurité en attente"
    kept = (
        f"registre de {len(record.entries)} observation(s) depuis le "
        f"{record.entries[0].at:%Y-%m-%d}"
        if record.entries
        else "aucun registre"
    ) + (f", {record.unreadable} ligne(s) illisible(s)" if record.unreadable else "")
    return f"{host} : {index} ; {pending} ; {kept} ; délai permis {max_pending_days} j"
