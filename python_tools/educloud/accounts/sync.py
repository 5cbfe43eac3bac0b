"""`educloud accounts plan|apply`: read and validate a file, plan against the realm, apply.

Validate first, apply second: nothing is applied while any line is invalid. `apply` always
starts by reading the realm and planning again, so a run killed at any point is resumed by
running it again: what was done is not in the new plan, what was not done is.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from educloud.accounts import mapping as mappings
from educloud.accounts.class_folders import FolderChange, sync_class_folders
from educloud.accounts.credentials import CredentialJournal
from educloud.accounts.keycloak_directory import (
    ApplyResult,
    ImportPath,
    KeycloakDirectory,
    Progress,
)
from educloud.accounts.model import Account, AccountState, DirectoryState, Login, Problem
from educloud.accounts.plan import Change, ChangeKind, Plan, apply_to, plan
from educloud.accounts.policy import AccountsPolicy, school_year
from educloud.accounts.readers import open_source
from educloud.accounts.sheets import CredentialSlip, render_class_sheets, write_index
from educloud.accounts.validate import validate
from educloud.clients.nextcloud import NextcloudClient
from educloud.errors import EducloudError

# Below this many creations one request per account is as quick and simpler to follow.
# Keycloak's offline import (kc.sh import) is never picked: on the lab it ran slower than the
# batched path (benchmarks/accounts_import.py --offline; docs/accounts.md).
NAIVE_BELOW = 20


class InvalidFileError(EducloudError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the file: nothing was applied")


@dataclass
class PlanReport:
    file: Path
    encoding: str
    encoding_reason: str
    accounts: list[Account]
    problems: list[Problem]
    against: str  # "realm <name>" or "an empty directory"
    plan: Plan | None = None
    current: DirectoryState | None = None
    path: ImportPath = ImportPath.BATCHED

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass
class ApplyReport:
    plan: PlanReport
    result: ApplyResult
    sheets: list[Path] = field(default_factory=list)
    resumed_passwords: int = 0
    folders: list[FolderChange] | None = None  # None: no Nextcloud given
    notices: list[str] = field(default_factory=list)


def read_accounts(
    file: Path, *, mapping: str, encoding: str | None, policy: AccountsPolicy
) -> tuple[str, str, list[Account], list[Problem]]:
    if not file.is_file():
        raise EducloudError(f"{file}: no such file")
    source = open_source(file, mappings.load_mapping(mapping), encoding)
    validated = validate(source.rows(), policy)
    return source.encoding, source.encoding_reason, validated.accounts, validated.problems


def choose_path(created: int) -> ImportPath:
    """The import path for this many creations."""
    return ImportPath.NAIVE if created < NAIVE_BELOW else ImportPath.BATCHED


def make_plan(
    file: Path,
    *,
    mapping: str,
    encoding: str | None,
    policy: AccountsPolicy,
    directory: KeycloakDirectory | None,
    today: date,
    year: int | None = None,
    progress: Progress | None = None,
) -> PlanReport:
    found_encoding, reason, accounts, problems = read_accounts(
        file, mapping=mapping, encoding=encoding, policy=policy
    )
    against = f"realm {directory.realm}" if directory else "an empty directory"
    report = PlanReport(file, found_encoding, reason, accounts, problems, against)
    if problems:
        return report
    current = directory.read_state(progress) if directory else DirectoryState()
    report.current = current
    report.plan = plan(
        current,
        accounts,
        school_year=year if year is not None else school_year(today, policy),
        today=today,
        grace_days=policy.grace_days,
    )
    if directory is not None:
        creations = (c.account for c in report.plan.of_kind(ChangeKind.CREATE_ACCOUNT) if c.account)
        report.problems.extend(Problem(0, "id", clash) for clash in directory.taken(creations))
    created = report.plan.counts()[ChangeKind.CREATE_ACCOUNT]
    report.path = choose_path(created)
    return report


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(state_dir / "apply.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EducloudError(
                f"another 'educloud accounts apply' holds {state_dir}/apply.lock: wait for it"
            ) from None
        yield


def apply_file(
    file: Path,
    *,
    mapping: str,
    encoding: str | None,
    policy: AccountsPolicy,
    directory: KeycloakDirectory,
    state_dir: Path,
    login_url: str,
    today: date,
    year: int | None = None,
    path: ImportPath | None = None,
    pdf: bool = False,
    nextcloud: NextcloudClient | None = None,
    progress: Progress | None = None,
    after_plan: Callable[[PlanReport], None] | None = None,
) -> ApplyReport:
    with _locked(state_dir):
        report = make_plan(
            file,
            mapping=mapping,
            encoding=encoding,
            policy=policy,
            directory=directory,
            today=today,
            year=year,
            progress=progress,
        )
        if not report.valid:
            raise InvalidFileError(report.problems)
        assert report.plan is not None
        if after_plan:
            after_plan(report)
        journal = CredentialJournal(state_dir)
        resumed = len(journal)
        by_id = {a.id.lower(): a for a in report.accounts}

        def password(account: AccountState) -> str | None:
            if account.login is not Login.LOCAL:
                return None
            source = by_id[account.id]
            return journal.password_for(
                CredentialSlip(
                    account_id=account.id,
                    given_name=source.given_name,
                    family_name=source.family_name,
                    uai=source.uai,
                    class_label=source.classes[0] if source.classes else "",
                    login=account.id,
                    password="",
                )
            )

        result = directory.apply(
            report.plan, path=path or report.path, passwords=password, progress=progress
        )
        sheets: list[Path] = []
        slips = list(journal.slips())
        if slips:
            existing = directory.existing_usernames(s.account_id for s in slips)
            printable = [s for s in slips if s.account_id in existing]
            # One directory per run: a second run the same day must not replace a class's
            # sheet by one holding only the newcomers.
            out = state_dir / "sheets" / datetime.now().strftime("%Y-%m-%dT%H%M%S")
            sheets = render_class_sheets(printable, out, login_url=login_url, pdf=pdf)
            sheets.append(write_index(printable, out))
            journal.clear()
        folders = None
        if nextcloud is not None:
            assert report.current is not None
            groups = apply_to(report.current, report.plan.changes).groups.values()
            folders = sync_class_folders(nextcloud, groups)
        return ApplyReport(report, result, sheets, resumed, folders, list(directory.notices))


def plan_document(report: PlanReport) -> dict[str, Any]:
    """The plan for machines (`--json`), without its changes: see `write_plan_json`."""
    document: dict[str, Any] = {
        "file": str(report.file),
        "encoding": report.encoding,
        "encoding_reason": report.encoding_reason,
        "accounts": len(report.accounts),
        "against": report.against,
        "valid": report.valid,
        "problems": [
            {"line": p.line, "field": p.field, "message": p.message} for p in report.problems
        ],
    }
    if report.plan is not None:
        document.update(
            school_year=report.plan.school_year,
            today=report.plan.today.isoformat(),
            path=str(report.path),
            counts={str(k): n for k, n in report.plan.counts().items()},
        )
    return document


def change_document(change: Change) -> dict[str, Any]:
    document = {"kind": str(change.kind), "target": change.target, "detail": change.describe()}
    if change.due_on:
        document["due_on"] = change.due_on.isoformat()
    return document


def write_plan_json(report: PlanReport, out: TextIO, **extra: Any) -> None:
    """The whole plan as one JSON object, its changes streamed one by one (a first load of
    an academy is a million changes: never built as one string)."""
    head = json.dumps({**plan_document(report), **extra}, ensure_ascii=False, indent=1)
    if report.plan is None:
        out.write(head + "\n")
        return
    out.write(head[:-2] + ',\n "changes": [')
    for number, change in enumerate(report.plan.changes):
        out.write(("," if number else "") + "\n  ")
        out.write(json.dumps(change_document(change), ensure_ascii=False))
    out.write("\n ]\n}\n")


def default_state_dir() -> Path:
    return Path(os.environ.get("EDUCLOUD_ACCOUNTS_STATE", "/var/lib/educloud/accounts"))
