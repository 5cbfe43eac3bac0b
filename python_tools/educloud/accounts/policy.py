"""What the operator decides about accounts: policies/accounts.yml, plus the grace period.

The grace period after a departure is read from retention.yml (categories.accounts), the
file the privacy notice is built from, so that what users are told and what the tool does
cannot drift apart (C6, C7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from educloud import paths
from educloud.accounts.model import Profile
from educloud.policy import PolicyError, Problem

ACCOUNTS_FILE = "accounts.yml"
RETENTION_FILE = "retention.yml"
_PROFILES = ", ".join(p.value for p in Profile)


@dataclass(frozen=True)
class AccountsPolicy:
    # Pupils' e-mail is dropped when the file is read (C4).
    email_kept_for: frozenset[Profile] = frozenset({Profile.TEACHER, Profile.STAFF, Profile.PARENT})
    local_login_for: frozenset[Profile] = frozenset({Profile.PUPIL})
    school_year_starts: tuple[int, int] = (9, 1)  # (month, day)
    grace_days: int = 90
    id_pattern: str = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
    max_classes_per_pupil: int = 1


def school_year(today: date, policy: AccountsPolicy) -> int:
    """The first calendar year of the school year that contains `today` (2024 for 2024-2025)."""
    month, day = policy.school_year_starts
    return today.year if (today.month, today.day) >= (month, day) else today.year - 1


def _read_yaml(path: Path, label: str, problems: list[Problem]) -> Any:
    if not path.is_file():
        problems.append(
            Problem(label, "", "file is missing (copy it from the repository's policies/)")
        )
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(Problem(label, "", f"not valid YAML: {exc}".replace("\n", " ")))
        return None


def _profiles(value: Any, label: str, key: str, problems: list[Problem]) -> frozenset[Profile]:
    if not isinstance(value, list):
        problems.append(Problem(label, key, f"must be a list of profiles ({_PROFILES})"))
        return frozenset()
    profiles = set()
    for index, item in enumerate(value):
        if item not in {p.value for p in Profile}:
            problems.append(
                Problem(label, f"{key}[{index}]", f"{item!r} is not a profile ({_PROFILES})")
            )
        else:
            profiles.add(Profile(item))
    return frozenset(profiles)


def _positive_int(value: Any, label: str, key: str, problems: list[Problem], minimum: int) -> int:
    # bool is an int in Python; `max_classes_per_pupil: yes` is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        problems.append(Problem(label, key, f"{value!r} is not an integer >= {minimum}"))
        return minimum
    return value


def _school_year_starts(value: Any, label: str, problems: list[Problem]) -> tuple[int, int]:
    key = "school_year_starts"
    if not isinstance(value, dict) or set(value) != {"month", "day"}:
        problems.append(Problem(label, key, "must be {month: <1-12>, day: <1-31>}"))
        return (9, 1)
    month = _positive_int(value["month"], label, f"{key}.month", problems, 1)
    day = _positive_int(value["day"], label, f"{key}.day", problems, 1)
    try:
        date(2001, month, day)  # not a leap year: 29 February would skip most years
    except ValueError:
        problems.append(Problem(label, key, f"{month}/{day} is not a day of every year"))
    return (month, day)


def _id_pattern(value: Any, label: str, problems: list[Problem]) -> str:
    if not isinstance(value, str):
        problems.append(Problem(label, "id_pattern", "must be a regular expression (a string)"))
        return AccountsPolicy.id_pattern
    try:
        re.compile(value)
    except re.error as exc:
        problems.append(Problem(label, "id_pattern", f"not a valid regular expression: {exc}"))
    return value


def _grace_days(retention: Any, label: str, problems: list[Problem]) -> int:
    try:
        value = retention["categories"]["accounts"]["retention_days"]
    except (KeyError, TypeError):
        problems.append(
            Problem(label, "categories.accounts.retention_days", "is missing (the grace period)")
        )
        return 0
    return _positive_int(value, label, "categories.accounts.retention_days", problems, 0)


def _unknown_keys(data: dict[str, Any], known: Iterable[str], label: str) -> list[Problem]:
    known = set(known)
    problems = []
    for key in data:
        if key == "grace_days":
            # One period for the notice and the tool (C6, C7): it lives in retention.yml.
            message = "set categories.accounts.retention_days in retention.yml instead"
            problems.append(Problem(label, key, message))
        elif key not in known:
            message = f"unknown key (known: {', '.join(sorted(known))})"
            problems.append(Problem(label, str(key), message))
    return problems


def load_policy(policies_dir: Path | None = None) -> AccountsPolicy:
    """Read policies/accounts.yml and the accounts' retention; PolicyError lists every problem."""
    directory = (policies_dir or paths.policies_dir()).resolve()
    problems: list[Problem] = []
    accounts_label = f"{directory.name}/{ACCOUNTS_FILE}"
    retention_label = f"{directory.name}/{RETENTION_FILE}"
    data = _read_yaml(directory / ACCOUNTS_FILE, accounts_label, problems)
    retention = _read_yaml(directory / RETENTION_FILE, retention_label, problems)
    if data is None and not problems:
        data = {}  # an empty file keeps every default
    if problems:
        raise PolicyError(problems)
    if not isinstance(data, dict):
        raise PolicyError([Problem(accounts_label, "", "must be a mapping of keys to values")])
    defaults = AccountsPolicy()
    known = set(AccountsPolicy.__dataclass_fields__) - {"grace_days"}
    problems.extend(_unknown_keys(data, known, accounts_label))
    policy = AccountsPolicy(
        email_kept_for=_profiles(
            data.get("email_kept_for", sorted(defaults.email_kept_for)),
            accounts_label,
            "email_kept_for",
            problems,
        ),
        local_login_for=_profiles(
            data.get("local_login_for", sorted(defaults.local_login_for)),
            accounts_label,
            "local_login_for",
            problems,
        ),
        school_year_starts=_school_year_starts(
            data.get("school_year_starts", {"month": 9, "day": 1}), accounts_label, problems
        ),
        grace_days=_grace_days(retention, retention_label, problems),
        id_pattern=_id_pattern(
            data.get("id_pattern", defaults.id_pattern), accounts_label, problems
        ),
        max_classes_per_pupil=_positive_int(
            data.get("max_classes_per_pupil", defaults.max_classes_per_pupil),
            accounts_label,
            "max_classes_per_pupil",
            problems,
            1,
        ),
    )
    if problems:
        raise PolicyError(problems)
    return policy
