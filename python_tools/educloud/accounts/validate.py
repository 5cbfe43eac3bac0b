"""Check every line of an export and build the accounts of the valid ones.

The whole file is read and every problem is collected with its line, so that the operator
fixes the export in one go instead of one error per run. A line with any problem gives no
account: half an account (a pupil without their class) is worse than none. E-mail addresses
of profiles the policy does not keep are neither checked nor kept (C4).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from educloud.accounts.model import (
    CANONICAL_FIELDS,
    LIST_SEPARATOR,
    REQUIRED_FIELDS,
    Account,
    Login,
    Problem,
    Profile,
    slug,
)
from educloud.accounts.policy import AccountsPolicy
from educloud.accounts.readers import SourceRow

# The UAI's last letter is a check letter: this alphabet (no I, O, Q) at digits mod 23.
UAI_CHECK_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
NAME_MAX = 100
LABEL_MAX = 40
_UAI = re.compile(r"[0-9]{7}[A-Z]")
# OWASP "CSV injection": a spreadsheet opening a later export would run such a cell.
_FORMULA = re.compile(r"\s*[=+\-@]|[\t\r]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_PROFILES = {profile.value: profile for profile in Profile}
_LOGINS = {login.value: login for login in Login}
_FORMULA_MESSAGE = (
    "formula-like cell (starts with =, +, -, @, tab or CR): a spreadsheet would run it; "
    "remove that character"
)


@dataclass(frozen=True)
class Validated:
    accounts: list[Account]
    problems: list[Problem]


def uai_check_letter(digits: str) -> str:
    """The check letter of a UAI's 7 digits ("0750654" -> "D", lycée Louis-le-Grand)."""
    return UAI_CHECK_LETTERS[int(digits) % 23]


@lru_cache(maxsize=4096)
def _iso_date(text: str) -> date | None:
    # Cached: an export has few distinct dates, so 500,000 accounts share a few objects.
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# Keycloak's person-name validator (user profile `person_name_prohibited_characters`).
_NAME_REFUSED = frozenset('<>&"$%!#?§;*~/\\|^=[]{}()')


def _has_control(text: str) -> bool:
    # isprintable() is the fast path; categories tell a control from a no-break space.
    return not text.isprintable() and any(
        unicodedata.category(char) in _CONTROL_CATEGORIES for char in text
    )


@dataclass
class _Line:
    """One row being checked; `account` is built only when `problems` stays empty."""

    row: SourceRow
    problems: list[Problem]
    profile: Profile | None = None
    uai: str | None = None
    classes: tuple[str, ...] = ()
    classes_ok: bool = False

    def bad(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.row.line, field, message))


class _Validator:
    def __init__(self, policy: AccountsPolicy) -> None:
        self.policy = policy
        self.id_pattern = re.compile(policy.id_pattern)
        self.first_line_of_id: dict[str, int] = {}
        self.first_line_of_email: dict[str, int] = {}

    def check(self, row: SourceRow) -> tuple[_Line, Account | None]:
        line = _Line(row, list(row.problems))
        raw = {name: row.values.get(name, "") for name in CANONICAL_FIELDS}
        text: dict[str, str] = {}
        for name in CANONICAL_FIELDS:
            if name in ("classes", "groups"):
                continue  # checked label by label
            if _FORMULA.match(raw[name]) and (name != "email" or self._email_kept(raw)):
                line.bad(name, _FORMULA_MESSAGE)
                continue
            text[name] = raw[name].strip()
            if name in REQUIRED_FIELDS and not text[name]:
                line.bad(name, "missing (this field is required)")
                del text[name]
        self._check_id(line, text.get("id"))
        for name in ("given_name", "family_name"):
            self._check_name(line, name, text.get(name))
        line.profile = self._check_profile(line, text.get("profile"))
        line.uai = self._check_uai(line, text.get("uai"))
        email = self._check_email(line, line.profile, text.get("email"))
        line.classes, line.classes_ok = self._labels(line, "classes", raw["classes"])
        groups, _ = self._labels(line, "groups", raw["groups"])
        if line.profile is Profile.PUPIL and len(line.classes) > self.policy.max_classes_per_pupil:
            line.bad(
                "classes",
                f"{len(line.classes)} classes ({', '.join(line.classes)}) where a pupil has at "
                f"most {self.policy.max_classes_per_pupil}: keep the current one",
            )
        start, end = self._check_dates(line, text.get("start_date"), text.get("end_date"))
        login = self._check_login(line, text.get("login"))
        if line.problems or line.profile is None or line.uai is None:
            return line, None
        if login is None:
            local = line.profile in self.policy.local_login_for
            login = Login.LOCAL if local else Login.FEDERATED
        account = Account(
            id=text["id"],
            given_name=text["given_name"],
            family_name=text["family_name"],
            email=email,
            profile=line.profile,
            uai=line.uai,
            classes=line.classes,
            groups=groups,
            start_date=start,
            end_date=end,
            login=login,
        )
        return line, account

    def _email_kept(self, raw: dict[str, str]) -> bool:
        profile = _PROFILES.get(raw["profile"].strip().lower())
        return profile is not None and profile in self.policy.email_kept_for

    def _check_id(self, line: _Line, value: str | None) -> None:
        if value is None:
            return
        if not self.id_pattern.fullmatch(value):
            line.bad(
                "id",
                f"{value!r} is not a valid id (policies/accounts.yml id_pattern: "
                f"{self.policy.id_pattern})",
            )
        # Lower-cased, the id is the login name: "Ab12" and "aB12" would be one account.
        key = value.lower()
        first = self.first_line_of_id.setdefault(key, line.row.line)
        if first != line.row.line:
            line.bad("id", f"{value!r} is already on line {first} (ids ignore case)")

    @staticmethod
    def _check_name(line: _Line, name: str, value: str | None) -> None:
        if value is None:
            return
        if len(value) > NAME_MAX:
            line.bad(name, f"{len(value)} characters, more than {NAME_MAX}")
        if _has_control(value):
            line.bad(name, "contains a control character (invisible): retype the name")
        refused = sorted(set(value) & _NAME_REFUSED)
        if refused:
            # The realm's user profile (person_name_prohibited_characters) refuses them.
            line.bad(name, f"contains {' '.join(refused)}, which Keycloak refuses in a name")

    @staticmethod
    def _check_profile(line: _Line, value: str | None) -> Profile | None:
        if value is None:
            return None
        profile = _PROFILES.get(value.lower())
        if profile is None:
            line.bad("profile", f"{value!r} is not one of {', '.join(_PROFILES)}")
        return profile

    @staticmethod
    def _check_uai(line: _Line, value: str | None) -> str | None:
        if value is None:
            return None
        uai = value.upper()
        if not _UAI.fullmatch(uai):
            line.bad("uai", f"{value!r} is not a UAI (7 digits and a letter, e.g. 0750654D)")
            return None
        expected = uai_check_letter(uai[:7])
        if uai[7] != expected:
            line.bad("uai", f"{value!r}: wrong check letter, {uai[:7]}{expected} expected")
            return None
        return sys.intern(uai)

    def _check_email(self, line: _Line, profile: Profile | None, value: str | None) -> str | None:
        if profile not in self.policy.email_kept_for or not value:
            return None  # not kept: never looked at (C4)
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            line.bad("email", f"{value!r} is not an e-mail address")
            return None
        # Keycloak stores addresses lower-cased and refuses one address on two accounts.
        address = value.lower()
        first = self.first_line_of_email.setdefault(address, line.row.line)
        if first != line.row.line:
            line.bad("email", f"{value!r} is already on line {first}: one address, one account")
            return None
        return address

    @staticmethod
    def _labels(line: _Line, name: str, value: str) -> tuple[tuple[str, ...], bool]:
        labels: set[str] = set()
        ok = True
        for part in value.split(LIST_SEPARATOR):
            label = part.strip()
            if not label:
                continue
            if _FORMULA.match(part):
                line.bad(name, f"{part!r}: {_FORMULA_MESSAGE}")
            elif len(label) > LABEL_MAX:
                line.bad(name, f"{label!r}: {len(label)} characters, more than {LABEL_MAX}")
            elif "/" in label:
                line.bad(name, f"{label!r}: '/' cannot be part of a group name")
            elif _has_control(label):
                line.bad(name, f"{label!r}: contains a control character")
            else:
                labels.add(sys.intern(label))
                continue
            ok = False
        return tuple(sorted(labels)), ok

    @staticmethod
    def _check_dates(
        line: _Line, start_text: str | None, end_text: str | None
    ) -> tuple[date | None, date | None]:
        dates: list[date | None] = []
        for name, text in (("start_date", start_text), ("end_date", end_text)):
            parsed = _iso_date(text) if text else None
            if text and parsed is None:
                line.bad(name, f"{text!r} is not a date yyyy-mm-dd")
            dates.append(parsed)
        start, end = dates
        if start and end and start > end:
            line.bad("end_date", f"{end} is before start_date {start}")
        return start, end

    @staticmethod
    def _check_login(line: _Line, value: str | None) -> Login | None:
        if not value:
            return None
        login = _LOGINS.get(value.lower())
        if login is None:
            line.bad("login", f"{value!r} is not one of {', '.join(_LOGINS)} (or empty)")
        return login


def validate(rows: Iterable[SourceRow], policy: AccountsPolicy) -> Validated:
    """Read every row; the accounts of the valid lines and every problem, by line."""
    validator = _Validator(policy)
    accounts: list[Account] = []
    problems: list[Problem] = []
    classes_with_pupils: set[tuple[str, str]] = set()  # (uai, slug of the class label)
    schools_with_pupils: set[str] = set()
    # Two labels of one school with one slug would be one group: (uai, field, slug) -> label.
    label_of_slug: dict[tuple[str, str, str], tuple[str, int]] = {}
    # Lines naming classes for someone who is not a pupil: checked once all pupils are known.
    naming_classes: list[tuple[_Line, int | None]] = []
    for row in rows:
        line, account = validator.check(row)
        problems.extend(line.problems)
        if account is not None:
            accounts.append(account)
        if account is not None:
            for field, labels in (("classes", account.classes), ("groups", account.groups)):
                for label in labels:
                    known, first = label_of_slug.setdefault(
                        (account.uai, field, slug(label)), (label, row.line)
                    )
                    if known != label:
                        problems.append(
                            Problem(
                                row.line,
                                field,
                                f"{label!r} and {known!r} (line {first}) would be one group in "
                                f"{account.uai}: spell them alike or apart",
                            )
                        )
        if line.uai is None or not line.classes_ok:
            continue
        if line.profile is Profile.PUPIL:
            schools_with_pupils.add(line.uai)
            # Even from a line with other problems: its class exists, the line needs fixing.
            classes_with_pupils.update((line.uai, slug(label)) for label in line.classes)
        elif line.profile is not None and line.classes:
            naming_classes.append((line, len(accounts) - 1 if account else None))
    rejected: set[int] = set()
    for line, index in naming_classes:
        assert line.uai is not None  # appended only with a UAI
        if line.uai not in schools_with_pupils:
            continue  # a file of staff only (one AAF feed a profile): nothing to check against
        unknown = [c for c in line.classes if (line.uai, slug(c)) not in classes_with_pupils]
        if unknown:
            problems.append(
                Problem(
                    line.row.line,
                    "classes",
                    f"unknown class {', '.join(unknown)}: no pupil of {line.uai} in this file is "
                    "in it (check the spelling; pupils and staff go in the same import)",
                )
            )
            if index is not None:
                rejected.add(index)
    if rejected:
        accounts = [account for i, account in enumerate(accounts) if i not in rejected]
    problems.sort(key=lambda problem: problem.line)  # stable: a line's fields stay in order
    return Validated(accounts, problems)
