"""Retention (C7): what policies/retention.yml makes due today, and doing it.

`plan` is read-only: it asks every store what it holds past its period and lists it,
together with the categories another component enforces by itself (Keycloak expires its
events, Nextcloud its trash and versions, journald and logrotate the logs) and whether
that component's setting matches the policy. `apply` re-plans and then erases or
archives what is due, writing every action to the hash-chained journal.

Accounts whose category says `export_before_erase` are exported first (C8); the account
is erased only once its archive exists and its manifest's checksums verify. A failed or
corrupted export leaves the account in place, says why, and is retried the next run.

Resumable: each run starts from the stores' state. An export that exists and verifies is
reused, not redone. Before an account is erased an `erase_started` entry is written; if a
run dies between that entry and `account_erased`, the next run sees the account gone and
records its erasure then.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from educloud.errors import EducloudError
from educloud.portability import export
from educloud.retention import journal
from educloud.retention.journal import Journal

ACCOUNTS = "accounts"
EXPORTS = "exports"
CONTRACT_END_EXPORTS = "contract_end_exports"
JOURNAL = "retention_journal"
DEPARTURES = "departures"  # where the exports of departed accounts are written
REPORTS = "illicit_content_reports"


class RetentionError(EducloudError):
    """The policy or a store cannot be read."""


class Action(StrEnum):
    EXPORT_THEN_ERASE = "export_then_erase"
    ERASE = "erase"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class Rule:
    """One category of retention.yml."""

    category: str
    days: int
    starts: str
    at_expiry: str
    enforced_by: str
    export_before_erase: bool = False

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)


def rules_from_policy(categories: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    return {
        name: Rule(
            category=name,
            days=int(rule["retention_days"]),
            starts=str(rule["starts"]),
            at_expiry=str(rule["at_expiry"]),
            enforced_by=str(rule["enforced_by"]),
            export_before_erase=bool(rule.get("export_before_erase", False)),
        )
        for name, rule in categories.items()
    }


# ---------------------------------------------------------------------------- the stores


@dataclass(frozen=True)
class DepartedAccount:
    """A disabled account with a departure date (set by `educloud accounts`)."""

    id: str  # the directory's own id (Keycloak's UUID)
    username: str
    departed_on: date
    enabled: bool = False


class AccountStore(Protocol):
    def departed_accounts(self) -> Iterator[DepartedAccount]: ...

    def exists(self, username: str) -> bool: ...

    def erase(self, account: DepartedAccount) -> str | None:
        """Erase the account everywhere it exists; an account already gone is not an error.
        Returns what was found already gone (for the journal and the report), or None."""
        ...


class Exporter(Protocol):
    def export(self, account: DepartedAccount, directory: Path, now: datetime) -> Path:
        """The account's archive in `directory` (an existing verified one is reused)."""
        ...

    def verify(self, archive: Path) -> list[str]: ...


@dataclass(frozen=True)
class Enforced:
    """A category another component enforces by itself, and what was found about it."""

    category: str
    enforced_by: str
    status: str
    ok: bool | None  # None: cannot be checked from here (says why in status)


class EnforcementCheck(Protocol):
    def __call__(self, rules: dict[str, Rule], today: date) -> Iterable[Enforced]: ...


class ReportArchive(Protocol):
    """The report service's old reports (C9), archived as retention.yml says."""

    def due(self, before: date) -> int: ...

    def archive(self, before: date) -> int: ...


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class DueItem:
    category: str
    subject: str
    due_on: date
    action: Action
    detail: str = ""
    account: DepartedAccount | None = field(default=None, compare=False)
    path: Path | None = field(default=None, compare=False)
    count: int = 0


@dataclass
class RetentionPlan:
    today: date
    due: list[DueItem]
    enforced: list[Enforced]
    waiting: int = 0  # departed accounts still in their grace period

    def by_category(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.due:
            counts[item.category] = counts.get(item.category, 0) + max(item.count, 1)
        return counts


@dataclass
class Stores:
    """Where the deployment keeps what retention governs; None: not deployed here."""

    exports_dir: Path
    journal_path: Path
    accounts: AccountStore | None = None
    exporter: Exporter | None = None
    reports: ReportArchive | None = None
    checks: list[EnforcementCheck] = field(default_factory=list)


def _rule(rules: dict[str, Rule], name: str) -> Rule:
    if name not in rules:
        raise RetentionError(f"retention.yml has no category {name!r}")
    return rules[name]


def _account_items(
    accounts: Iterable[DepartedAccount], rule: Rule, today: date
) -> tuple[list[DueItem], int]:
    due: list[DueItem] = []
    waiting = 0
    action = Action.EXPORT_THEN_ERASE if rule.export_before_erase else Action.ERASE
    for account in accounts:
        if account.enabled:
            continue  # back in the directory, or never disabled: not departed
        due_on = account.departed_on + rule.period
        if due_on <= today:
            due.append(
                DueItem(
                    ACCOUNTS,
                    account.username,
                    due_on,
                    action,
                    f"departed {account.departed_on}",
                    account=account,
                )
            )
        else:
            waiting += 1
    return due, waiting


def _recorded_on(archive: Path) -> date:
    """When an export was made: its manifest's `created_at`, else the file's time."""
    try:
        with zipfile.ZipFile(archive) as zf:
            created = json.loads(zf.read(export.MANIFEST_NAME))["created_at"]
        return datetime.fromisoformat(str(created)).astimezone(UTC).date()
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return datetime.fromtimestamp(archive.stat().st_mtime, UTC).date()


def _export_dirs(root: Path) -> Iterator[Path]:
    """Every directory under `root` that holds exports (it has an EXPORT-KIND marker)."""
    if not root.is_dir():
        return
    for directory, _subdirs, names in os.walk(root):
        if export.KIND_FILE in names:
            yield Path(directory)


def _export_items(root: Path, rules: dict[str, Rule], today: date) -> list[DueItem]:
    """User exports expire one by one from their writing; a contract-end run expires as a
    whole from its completion (an unfinished run is never due: it is still being made)."""
    due = []
    for directory in _export_dirs(root):
        kind = export.export_kind(directory)
        rule = _rule(rules, export.RETENTION_CATEGORIES[kind])
        archives = sorted(directory.glob("*.zip"))
        if kind == export.KIND_CONTRACT_END:
            completed = export.export_completed_at(directory)
            if completed is not None and completed.date() + rule.period <= today:
                due.append(
                    DueItem(
                        rule.category,
                        str(directory.relative_to(root)),
                        completed.date() + rule.period,
                        Action.ERASE,
                        f"contract-end exports completed {completed.date()}",
                        path=directory,
                        count=len(archives),
                    )
                )
            continue
        for archive in archives:
            due_on = _recorded_on(archive) + rule.period
            if due_on <= today:
                due.append(
                    DueItem(
                        rule.category,
                        str(archive.relative_to(root)),
                        due_on,
                        Action.ERASE,
                        "export",
                        path=archive,
                    )
                )
    return due


def _journal_item(path: Path, rule: Rule, today: date) -> DueItem | None:
    cutoff = datetime.combine(today - rule.period, time(), UTC)
    old = [
        e
        for e in journal.entries(path)
        if e.get("action") != journal.PRUNED and datetime.fromisoformat(e["at"]) < cutoff
    ]
    if not old:
        return None
    return DueItem(
        JOURNAL,
        path.name,
        datetime.fromisoformat(old[0]["at"]).date() + rule.period,
        Action.ERASE,
        f"{len(old)} entries older than {rule.days} days",
        path=path,
        count=len(old),
    )


def plan(rules: dict[str, Rule], stores: Stores, today: date) -> RetentionPlan:
    """What is due on `today` (read-only)."""
    due: list[DueItem] = []
    waiting = 0
    if stores.accounts is not None:
        items, waiting = _account_items(
            stores.accounts.departed_accounts(), _rule(rules, ACCOUNTS), today
        )
        due += items
    due += _export_items(stores.exports_dir, rules, today)
    enforced: list[Enforced] = []
    if REPORTS in rules:
        rule = rules[REPORTS]
        if stores.reports is None:
            enforced.append(
                Enforced(REPORTS, rule.enforced_by, "report service not configured here", None)
            )
        else:
            count = stores.reports.due(today - rule.period)
            if count:
                due.append(
                    DueItem(
                        REPORTS,
                        "reports",
                        today,
                        Action.ARCHIVE if rule.at_expiry == "archive" else Action.ERASE,
                        f"{count} reports older than {rule.days} days",
                        count=count,
                    )
                )
    if JOURNAL in rules:
        item = _journal_item(stores.journal_path, rules[JOURNAL], today)
        if item:
            due.append(item)
    for check in stores.checks:
        enforced += check(rules, today)
    return RetentionPlan(today, due, enforced, waiting)


# ---------------------------------------------------------------------------- applying


@dataclass
class Outcome:
    item: DueItem
    done: bool
    message: str


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # erasures confirmed on resume

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.done]


def _pending_erasures(path: Path) -> set[str]:
    pending: set[str] = set()
    for entry in journal.entries(path):
        if entry.get("category") != ACCOUNTS:
            continue
        if entry.get("action") == "erase_started":
            pending.add(entry["subject"])
        elif entry.get("action") == "account_erased":
            pending.discard(entry["subject"])
    return pending


def _erase_account(
    item: DueItem, stores: Stores, log: Journal, now: Callable[[], datetime]
) -> Outcome:
    assert item.account is not None and stores.accounts is not None
    account = item.account
    detail: dict[str, Any] = {"departed_on": account.departed_on.isoformat()}
    if item.action is Action.EXPORT_THEN_ERASE:
        if stores.exporter is None:
            return Outcome(item, False, "no exporter configured: the account is kept")
        directory = stores.exports_dir / DEPARTURES
        try:
            archive = stores.exporter.export(account, directory, now())
            problems = stores.exporter.verify(archive)
        except EducloudError as exc:
            log.append(
                "export_failed",
                category=ACCOUNTS,
                subject=account.username,
                detail={"reason": str(exc)},
                at=now(),
            )
            return Outcome(item, False, f"export failed, account kept: {exc}")
        if problems:
            log.append(
                "export_failed",
                category=ACCOUNTS,
                subject=account.username,
                detail={"archive": str(archive), "problems": problems[:5]},
                at=now(),
            )
            return Outcome(
                item, False, f"export does not verify, account kept: {'; '.join(problems[:3])}"
            )
        detail["archive"] = str(archive.relative_to(stores.exports_dir))
        log.append(
            "export_verified", category=ACCOUNTS, subject=account.username, detail=detail, at=now()
        )
    log.append(
        "erase_started", category=ACCOUNTS, subject=account.username, detail=detail, at=now()
    )
    gone = stores.accounts.erase(account)
    erased = {**detail, "already_gone": gone} if gone else detail
    log.append(
        "account_erased", category=ACCOUNTS, subject=account.username, detail=erased, at=now()
    )
    message = "exported and erased" if "archive" in detail else "erased"
    return Outcome(item, True, f"{message} ({gone})" if gone else message)


def _erase_export(item: DueItem, log: Journal, now: Callable[[], datetime]) -> Outcome:
    assert item.path is not None
    if item.path.is_dir():  # a whole contract-end run: archives first, its markers last
        for archive in sorted(item.path.glob("*.zip")):
            archive.unlink()
        shutil.rmtree(item.path)
    else:
        item.path.unlink(missing_ok=True)
    log.append(
        "export_erased",
        category=item.category,
        subject=item.subject,
        detail={"due_on": item.due_on.isoformat()},
        at=now(),
    )
    return Outcome(item, True, "erased")


def apply(
    rules: dict[str, Rule],
    stores: Stores,
    today: date,
    *,
    now: Callable[[], datetime] | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> tuple[RetentionPlan, ApplyResult]:
    """Re-plan, then do what is due. Failures are reported per item, never hidden."""
    clock = now or (lambda: datetime.now(UTC))
    result = ApplyResult()
    with Journal(stores.journal_path) as log:
        if stores.accounts is not None:
            for username in sorted(_pending_erasures(stores.journal_path)):
                if not stores.accounts.exists(username):
                    log.append(
                        "account_erased",
                        category=ACCOUNTS,
                        subject=username,
                        detail={"confirmed_on_resume": True},
                        at=clock(),
                    )
                    result.recovered.append(username)
        current = plan(rules, stores, today)
        for item in current.due:
            if item.category == ACCOUNTS:
                try:
                    outcome = _erase_account(item, stores, log, clock)
                except EducloudError as exc:
                    outcome = Outcome(item, False, str(exc))
            elif item.category in (EXPORTS, CONTRACT_END_EXPORTS):
                outcome = _erase_export(item, log, clock)
            elif item.category == REPORTS and stores.reports is not None:
                archived = stores.reports.archive(today - rules[REPORTS].period)
                log.append(
                    "reports_archived",
                    category=REPORTS,
                    subject="reports",
                    detail={"count": archived},
                    at=clock(),
                )
                outcome = Outcome(item, True, f"{archived} archived")
            elif item.category == JOURNAL:
                cutoff = datetime.combine(today - rules[JOURNAL].period, time(), UTC)
                dropped = log.prune(cutoff)
                outcome = Outcome(item, True, f"{dropped} entries dropped")
            else:  # pragma: no cover - plan only yields the categories above
                outcome = Outcome(item, False, "no action known for this category")
            result.outcomes.append(outcome)
            if progress:
                progress(outcome)
    return current, result
