"""The planner: the plan of B applied to any A yields B, and a second plan is empty."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from educloud.accounts.model import (
    Account,
    AccountState,
    DirectoryState,
    GroupKind,
    GroupState,
    Login,
    Profile,
    class_group,
    school_group,
)
from educloud.accounts.plan import (
    ChangeKind,
    apply_to,
    desired_groups,
    plan,
    scope_of,
    target_state,
)

TODAY = date(2026, 11, 26)
YEAR = 2026
GRACE = 90

UAIS = ("0750001A", "0690002B")
LABELS = ("3A", "3B", "4A", "Latin")
IDS = tuple(f"user{n}" for n in range(12))
dates = st.one_of(st.none(), st.dates(TODAY - timedelta(days=400), TODAY + timedelta(days=400)))


@st.composite
def accounts_files(draw: st.DrawFn) -> list[Account]:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    accounts = []
    for account_id in ids:
        start, end = draw(dates), draw(dates)
        if start and end and start > end:
            start, end = end, start
        accounts.append(
            Account(
                id=draw(st.sampled_from([account_id, account_id.upper()])),
                given_name=draw(st.sampled_from(["Léa", "Hugo"])),
                family_name=draw(st.sampled_from(["Martin", "Durand"])),
                email=draw(st.sampled_from([None, f"{account_id}@example.test"])),
                profile=draw(st.sampled_from(Profile)),
                uai=draw(st.sampled_from(UAIS)),
                classes=tuple(sorted(draw(st.sets(st.sampled_from(LABELS), max_size=2)))),
                groups=tuple(sorted(draw(st.sets(st.sampled_from(LABELS), max_size=1)))),
                start_date=start,
                end_date=end,
                login=draw(st.sampled_from(Login)),
            )
        )
    return accounts


@st.composite
def directory_states(draw: st.DrawFn) -> DirectoryState:
    """Any state the identity provider can hold: any groups, any members among them."""
    groups: dict[str, GroupState] = {}
    for uai in UAIS:
        for year in (YEAR - 1, YEAR):
            for label in draw(st.sets(st.sampled_from(LABELS), max_size=3)):
                name = class_group(uai, year, label)
                archived = draw(st.sampled_from([None, TODAY - timedelta(days=100)]))
                groups[name] = GroupState(name, GroupKind.CLASS, uai, label, year, archived)
        if draw(st.booleans()):
            groups[school_group(uai)] = GroupState(school_group(uai), GroupKind.SCHOOL, uai, "")
    names = sorted(groups)
    accounts = {}
    for account_id in draw(st.lists(st.sampled_from(IDS), unique=True)):
        enabled = draw(st.booleans())
        member_of = frozenset(draw(st.sets(st.sampled_from(names)))) if names else frozenset()
        departed = None if enabled else draw(dates)
        accounts[account_id] = AccountState(
            id=account_id,
            given_name=draw(st.sampled_from(["Léa", "Zoé"])),
            family_name="Martin",
            email=None,
            profile=draw(st.sampled_from(Profile)),
            groups=member_of,
            enabled=enabled,
            end_date=draw(dates),
            departed_on=departed,
            login=draw(st.sampled_from(Login)),
            # As read_state derives it: the school whose group the account is in.
            uai=min(
                (groups[n].uai for n in member_of if groups[n].kind is GroupKind.SCHOOL), default=""
            ),
        )
    return DirectoryState(accounts, groups)


@settings(max_examples=150, deadline=None)
@given(directory_states(), accounts_files())
def test_plan_of_b_applied_to_a_yields_b(current, accounts):
    result = apply_to(
        current, plan(current, accounts, school_year=YEAR, today=TODAY, grace_days=GRACE).changes
    )

    for account in accounts:
        key = account.id.lower()
        assert result.accounts[key] == target_state(account, current.accounts.get(key), YEAR, TODAY)
    listed = {a.id.lower() for a in accounts}
    scope = scope_of(accounts)
    for key, before in current.accounts.items():
        if key in listed:
            continue
        after = result.accounts[key]
        if (before.uai, before.profile) not in scope:
            assert after == before  # the file does not speak for this account
            continue
        assert not after.enabled
        assert after.departed_on == (before.departed_on or TODAY)
        assert after.groups == before.groups  # kept: disabled accounts lose nothing
    wanted = desired_groups(accounts, YEAR)
    schools = {uai for uai, _ in scope}
    held = {
        name
        for key, a in current.accounts.items()
        if a.enabled and key not in listed and (a.uai, a.profile) not in scope
        for name in a.groups
    }
    for name, group in result.groups.items():
        before = current.groups.get(name)
        if name in wanted:
            assert group == wanted[name] or (group.archived_on is None and before is not None)
        elif group.uai in schools and name not in held:
            assert group.archived_on is not None, f"{name} should be archived"
        else:
            assert group == before, f"{name} is outside the file's scope"
    assert set(wanted) <= set(result.groups)


@settings(max_examples=150, deadline=None)
@given(directory_states(), accounts_files())
def test_second_plan_is_empty(current, accounts):
    first = plan(current, accounts, school_year=YEAR, today=TODAY, grace_days=GRACE)
    after = apply_to(current, first.changes)
    second = plan(after, accounts, school_year=YEAR, today=TODAY, grace_days=GRACE)
    assert second.applicable == ()


def _pupil(account_id: str, label: str, **kwargs) -> Account:
    return Account(account_id, "Léa", "Martin", None, Profile.PUPIL, "0750001A", (label,), **kwargs)


def _applied(
    current: DirectoryState, accounts: list[Account], *, year: int = YEAR, today: date = TODAY
):
    result = plan(current, accounts, school_year=year, today=today, grace_days=GRACE)
    return result, apply_to(current, result.changes)


def test_rollover_moves_pupils_and_archives_last_years_classes():
    _, last_year = _applied(DirectoryState(), [_pupil("p1", "3A"), _pupil("p2", "3A")], year=2025)
    result, this_year = _applied(last_year, [_pupil("p1", "4A"), _pupil("p2", "4B")])

    counts = result.counts()
    assert counts[ChangeKind.CREATE_GROUP] == 2
    assert counts[ChangeKind.MOVE_ACCOUNT] == 2
    assert counts[ChangeKind.CREATE_ACCOUNT] == 0
    archived = [c.target for c in result.of_kind(ChangeKind.ARCHIVE_GROUP)]
    assert archived == [class_group("0750001A", 2025, "3A")]
    assert this_year.accounts["p1"].groups == {
        school_group("0750001A"),
        class_group("0750001A", 2026, "4A"),
    }


def test_absent_account_is_disabled_at_once_and_due_after_the_grace_period():
    _, before = _applied(DirectoryState(), [_pupil("p1", "3A"), _pupil("p2", "3A")])
    result, after = _applied(before, [_pupil("p1", "3A")])

    (disable,) = result.of_kind(ChangeKind.DISABLE_ACCOUNT)
    assert disable.target == "p2"
    assert disable.due_on == TODAY + timedelta(days=GRACE)
    assert not after.accounts["p2"].enabled
    later = plan(
        after,
        [_pupil("p1", "3A")],
        school_year=YEAR,
        today=TODAY + timedelta(days=GRACE),
        grace_days=GRACE,
    )
    assert [c.target for c in later.of_kind(ChangeKind.DUE_FOR_DELETION)] == ["p2"]
    assert later.applicable == ()


def test_past_end_date_disables_with_the_end_date_as_departure():
    ended = TODAY - timedelta(days=10)
    _, before = _applied(DirectoryState(), [_pupil("p1", "3A")])
    result, _ = _applied(before, [_pupil("p1", "3A", end_date=ended)])

    (disable,) = result.of_kind(ChangeKind.DISABLE_ACCOUNT)
    assert disable.account is not None and disable.account.departed_on == ended
    assert disable.due_on == ended + timedelta(days=GRACE)


def test_account_not_started_is_created_disabled():
    result, after = _applied(
        DirectoryState(), [_pupil("p1", "3A", start_date=TODAY + timedelta(days=5))]
    )

    assert [c.kind for c in result.changes if c.target == "p1"] == [ChangeKind.CREATE_ACCOUNT]
    assert not after.accounts["p1"].enabled
    assert after.accounts["p1"].departed_on is None


def test_a_file_speaks_only_for_its_schools_and_profiles():
    teacher = Account("t1", "Jean", "Prof", None, Profile.TEACHER, "0750001A", ("3A",))
    other_school = Account("p9", "Zoé", "Martin", None, Profile.PUPIL, "0690002B", ("5C",))
    _, before = _applied(DirectoryState(), [_pupil("p1", "3A"), teacher, other_school])
    # A pupils' export of one school: the teacher and the other school are not in it.
    result, after = _applied(before, [_pupil("p1", "4A")])

    assert after.accounts["t1"] == before.accounts["t1"]
    assert after.accounts["p9"] == before.accounts["p9"]
    # 3A still has its teacher (outside the scope): not archived by a pupils' file.
    assert class_group("0750001A", YEAR, "3A") not in {
        c.target for c in result.of_kind(ChangeKind.ARCHIVE_GROUP)
    }
    assert not list(result.of_kind(ChangeKind.DISABLE_ACCOUNT))


def test_returning_account_is_enabled_and_no_longer_due():
    _, before = _applied(DirectoryState(), [_pupil("p1", "3A"), _pupil("p2", "3A")])
    _, gone = _applied(before, [_pupil("p2", "3A")], today=TODAY)
    result, back = _applied(
        gone, [_pupil("p1", "3A"), _pupil("p2", "3A")], today=TODAY + timedelta(days=GRACE + 1)
    )

    assert [c.kind for c in result.changes if c.target == "p1"] == [ChangeKind.ENABLE_ACCOUNT]
    assert back.accounts["p1"].enabled and back.accounts["p1"].departed_on is None
