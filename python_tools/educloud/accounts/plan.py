"""The plan: what must change in the directory so that it holds what the academy's file says.

Pure functions over `model` shapes, no I/O: `plan` compares the state the identity provider
holds with the accounts of a valid file; `apply_to` is the same changes applied to a state in
memory, which the property tests use to prove that the plan of B applied to any A yields B
and that a second plan is empty (what `apply` relies on to be idempotent and resumable).

Rules (docs/accounts.md):
- an account is enabled from its start date to its end date; outside, it is disabled;
- a file speaks for the (school, profile) pairs it contains — its *scope* — and for no
  other: a pupils' export leaves the teachers alone, one school's export the other schools
  (academies feed one file per profile and school, as the AAF feeds are cut);
- an account of the scope absent from the file, or past its end date, is disabled at once
  and its departure date recorded; `grace_days` later it is due for export and deletion
  (C7), which the data-rights tooling does, not this one: the plan shows the date;
- a managed group of a school of the file that no account of the file needs any more (last
  year's classes at the rollover) is archived — unless an enabled account outside the scope
  is still in it — and never deleted: its files stay under the retention policy.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

from educloud.accounts.model import (
    Account,
    AccountState,
    DirectoryState,
    GroupKind,
    GroupState,
    Profile,
    class_group,
    other_group,
    school_group,
)


class ChangeKind(StrEnum):
    CREATE_GROUP = "create_group"
    ARCHIVE_GROUP = "archive_group"
    RESTORE_GROUP = "restore_group"
    CREATE_ACCOUNT = "create_account"
    UPDATE_ACCOUNT = "update_account"
    MOVE_ACCOUNT = "move_account"
    DISABLE_ACCOUNT = "disable_account"
    ENABLE_ACCOUNT = "enable_account"
    # Shown, not applied: the account's grace period is over, export and deletion are due.
    DUE_FOR_DELETION = "due_for_deletion"


# The order `apply` follows: groups exist before accounts join them.
APPLY_ORDER: tuple[ChangeKind, ...] = tuple(ChangeKind)
INFORMATIONAL: frozenset[ChangeKind] = frozenset({ChangeKind.DUE_FOR_DELETION})


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    target: str  # account id or group name
    group: GroupState | None = None  # the group as it must be (group changes)
    account: AccountState | None = None  # the account as it must be (account changes)
    add_groups: frozenset[str] = frozenset()
    remove_groups: frozenset[str] = frozenset()
    fields: tuple[str, ...] = ()  # updated fields (update_account)
    due_on: date | None = None  # when export and deletion are due (departures)

    def describe(self) -> str:
        """One line for the plan's table."""
        if self.kind is ChangeKind.MOVE_ACCOUNT:
            parts = [f"+{g}" for g in sorted(self.add_groups)]
            parts += [f"-{g}" for g in sorted(self.remove_groups)]
            return " ".join(parts)
        if self.kind is ChangeKind.UPDATE_ACCOUNT:
            return ", ".join(self.fields)
        if self.kind in (ChangeKind.DISABLE_ACCOUNT, ChangeKind.DUE_FOR_DELETION):
            departed = self.account.departed_on if self.account else None
            if departed is None:
                return "not started yet: enabled on its start date"
            return f"departed {departed}, export and deletion due {self.due_on}"
        if self.kind is ChangeKind.CREATE_ACCOUNT and self.account:
            state = "enabled" if self.account.enabled else "disabled until its start date"
            return f"{self.account.profile}, {state}, {len(self.account.groups)} groups"
        if self.group is not None:
            return f"{self.group.kind} {self.group.label or self.group.uai}".strip()
        return ""


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    school_year: int
    today: date

    def counts(self) -> dict[ChangeKind, int]:
        counted = Counter(change.kind for change in self.changes)
        return {kind: counted.get(kind, 0) for kind in ChangeKind}

    @property
    def applicable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind not in INFORMATIONAL)

    def of_kind(self, kind: ChangeKind) -> Iterator[Change]:
        return (c for c in self.changes if c.kind is kind)


def scope_of(accounts: Iterable[Account]) -> frozenset[tuple[str, Profile]]:
    """The (school, profile) pairs a file speaks for."""
    return frozenset((account.uai, account.profile) for account in accounts)


def groups_of(account: Account, school_year: int) -> frozenset[str]:
    """The managed groups an account of the file belongs to this school year."""
    return _group_names(account.uai, account.classes, account.groups, school_year)


@lru_cache(maxsize=65536)
def _group_names(
    uai: str, classes: tuple[str, ...], others: tuple[str, ...], school_year: int
) -> frozenset[str]:
    # Cached: a class's pupils share one set, so 500,000 accounts hold a few thousand sets.
    names = {school_group(uai)}
    names.update(class_group(uai, school_year, label) for label in classes)
    names.update(other_group(uai, label) for label in others)
    return frozenset(sys.intern(name) for name in names)


def desired_groups(accounts: Iterable[Account], school_year: int) -> dict[str, GroupState]:
    groups: dict[str, GroupState] = {}
    for account in accounts:
        uai = account.uai
        name = school_group(uai)
        if name not in groups:
            groups[name] = GroupState(name, GroupKind.SCHOOL, uai, "")
        for label in account.classes:
            name = class_group(uai, school_year, label)
            if name not in groups:
                groups[name] = GroupState(name, GroupKind.CLASS, uai, label, school_year)
        for label in account.groups:
            name = other_group(uai, label)
            if name not in groups:
                groups[name] = GroupState(name, GroupKind.GROUP, uai, label)
    return groups


def is_active(account: Account, today: date) -> bool:
    started = account.start_date is None or account.start_date <= today
    ended = account.end_date is not None and account.end_date < today
    return started and not ended


def target_state(
    account: Account, current: AccountState | None, school_year: int, today: date
) -> AccountState:
    """The state an account of the file must have today."""
    active = is_active(account, today)
    departed_on: date | None = None
    if not active and account.end_date is not None and account.end_date < today:
        # Keep the first recorded departure: the grace period must not restart each run.
        departed_on = (current.departed_on if current else None) or account.end_date
    return AccountState(
        id=account.id.lower(),
        given_name=account.given_name,
        family_name=account.family_name,
        email=account.email,
        profile=account.profile,
        groups=groups_of(account, school_year),
        enabled=active,
        end_date=account.end_date,
        departed_on=departed_on,
        login=account.login,
        uai=account.uai,
    )


def departed_state(current: AccountState, today: date) -> AccountState:
    """An account absent from the file: disabled, departure recorded once."""
    return replace(current, enabled=False, departed_on=current.departed_on or today)


_IDENTITY_FIELDS = ("given_name", "family_name", "email", "profile", "end_date", "login")


def _account_changes(
    current: AccountState | None, target: AccountState, grace: timedelta
) -> Iterator[Change]:
    if current is None:
        yield Change(ChangeKind.CREATE_ACCOUNT, target.id, account=target)
        return
    changed = tuple(f for f in _IDENTITY_FIELDS if getattr(current, f) != getattr(target, f))
    if changed:
        yield Change(ChangeKind.UPDATE_ACCOUNT, target.id, account=target, fields=changed)
    if current.groups != target.groups:
        yield Change(
            ChangeKind.MOVE_ACCOUNT,
            target.id,
            account=target,
            add_groups=target.groups - current.groups,
            remove_groups=current.groups - target.groups,
        )
    if current.enabled and not target.enabled:
        due = target.departed_on + grace if target.departed_on else None
        yield Change(ChangeKind.DISABLE_ACCOUNT, target.id, account=target, due_on=due)
    elif not current.enabled and target.enabled:
        yield Change(ChangeKind.ENABLE_ACCOUNT, target.id, account=target)
    elif current.departed_on != target.departed_on:
        # Disabled either way, but the departure date is not the one to keep.
        yield Change(ChangeKind.UPDATE_ACCOUNT, target.id, account=target, fields=("departed_on",))


def plan(
    current: DirectoryState,
    accounts: Iterable[Account],
    *,
    school_year: int,
    today: date,
    grace_days: int,
) -> Plan:
    """The changes that make `current` hold `accounts` (a valid file), in apply order."""
    grace = timedelta(days=grace_days)
    by_kind: dict[ChangeKind, list[Change]] = {kind: [] for kind in ChangeKind}
    wanted = list(accounts)
    groups = desired_groups(wanted, school_year)
    scope = scope_of(wanted)
    schools = {uai for uai, _profile in scope}
    listed = {account.id.lower() for account in wanted}
    # Groups an enabled account outside the file and its scope is in: not the file's to archive.
    held_elsewhere = {
        name
        for key, existing in current.accounts.items()
        if existing.enabled and key not in listed and (existing.uai, existing.profile) not in scope
        for name in existing.groups
    }

    for name, group in groups.items():
        existing = current.groups.get(name)
        if existing is None:
            by_kind[ChangeKind.CREATE_GROUP].append(Change(ChangeKind.CREATE_GROUP, name, group))
        elif existing.archived_on is not None:
            by_kind[ChangeKind.RESTORE_GROUP].append(
                Change(ChangeKind.RESTORE_GROUP, name, replace(existing, archived_on=None))
            )
    for name, existing in current.groups.items():
        if name in groups or existing.archived_on is not None:
            continue
        if existing.uai in schools and name not in held_elsewhere:
            archived = replace(existing, archived_on=today)
            by_kind[ChangeKind.ARCHIVE_GROUP].append(
                Change(ChangeKind.ARCHIVE_GROUP, name, archived)
            )

    seen: set[str] = set()
    for account in wanted:
        key = account.id.lower()
        seen.add(key)
        existing_account = current.accounts.get(key)
        target = target_state(account, existing_account, school_year, today)
        for change in _account_changes(existing_account, target, grace):
            by_kind[change.kind].append(change)
    for key, existing_account in current.accounts.items():
        if key in seen or (existing_account.uai, existing_account.profile) not in scope:
            continue
        target = departed_state(existing_account, today)
        for change in _account_changes(existing_account, target, grace):
            by_kind[change.kind].append(change)

    for key, existing_account in current.accounts.items():
        departed = existing_account.departed_on
        if not existing_account.enabled and departed is not None and departed + grace <= today:
            # Still departed after this plan (absent, or present but ended)?
            by_kind[ChangeKind.DUE_FOR_DELETION].append(
                Change(
                    ChangeKind.DUE_FOR_DELETION,
                    key,
                    account=existing_account,
                    due_on=departed + grace,
                )
            )
    # An account back in the file is no longer due (enabled now or on its start date).
    returning = {
        c.target
        for kind in (ChangeKind.ENABLE_ACCOUNT, ChangeKind.UPDATE_ACCOUNT)
        for c in by_kind[kind]
        if c.account is not None and c.account.departed_on is None
    }
    by_kind[ChangeKind.DUE_FOR_DELETION] = [
        c for c in by_kind[ChangeKind.DUE_FOR_DELETION] if c.target not in returning
    ]
    ordered = tuple(change for kind in APPLY_ORDER for change in by_kind[kind])
    return Plan(ordered, school_year, today)


def apply_to(state: DirectoryState, changes: Iterable[Change]) -> DirectoryState:
    """The state after `changes`, in memory: the reference semantics of `apply`."""
    groups = dict(state.groups)
    accounts = dict(state.accounts)
    for change in changes:
        if change.kind in INFORMATIONAL:
            continue
        if change.group is not None:
            groups[change.target] = change.group
            continue
        assert change.account is not None, change
        key = change.target.lower()
        current = accounts.get(key)
        if change.kind is ChangeKind.CREATE_ACCOUNT or current is None:
            accounts[key] = change.account
        elif change.kind is ChangeKind.MOVE_ACCOUNT:
            new_groups = (current.groups - change.remove_groups) | change.add_groups
            accounts[key] = replace(current, groups=new_groups, uai=change.account.uai)
        elif change.kind is ChangeKind.UPDATE_ACCOUNT:
            accounts[key] = replace(
                current, **{f: getattr(change.account, f) for f in change.fields}
            )
        else:  # enable, disable
            accounts[key] = replace(
                current, enabled=change.account.enabled, departed_on=change.account.departed_on
            )
    return DirectoryState(accounts, groups)
