"""The shapes that cross the accounts modules: a directory record, the directory's state, a change.

An `Account` is one valid line of the academy's export after mapping and minimisation (C4):
only the fields below exist, whatever the source had. A `DirectoryState` is what the identity
provider holds for the accounts this tool manages; the planner compares the two.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class Profile(StrEnum):
    PUPIL = "pupil"
    TEACHER = "teacher"
    STAFF = "staff"
    PARENT = "parent"


class Login(StrEnum):
    """How the holder logs in: a generated password (printed sheet) or the academy's IdP."""

    LOCAL = "local"
    FEDERATED = "federated"


# The canonical fields, in the order of the canonical CSV's header (docs/accounts.md).
CANONICAL_FIELDS: tuple[str, ...] = (
    "id",
    "given_name",
    "family_name",
    "email",
    "profile",
    "uai",
    "classes",
    "groups",
    "start_date",
    "end_date",
    "login",
)
REQUIRED_FIELDS: frozenset[str] = frozenset({"id", "given_name", "family_name", "profile", "uai"})
# Separator of several classes or groups in one cell.
LIST_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Account:
    """One person of the directory, as the policy keeps them."""

    id: str  # stable id from the directory; lower-cased, it is the login name
    given_name: str
    family_name: str
    email: str | None
    profile: Profile
    uai: str
    classes: tuple[str, ...] = ()  # class labels in the school, sorted
    groups: tuple[str, ...] = ()  # other groups in the school (e.g. a subject team), sorted
    start_date: date | None = None
    end_date: date | None = None
    login: Login = Login.FEDERATED


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one line of the input cannot be applied."""

    line: int  # 1-based physical line of the file (header is line 1); 0 for the whole file
    field: str  # canonical field name, or "" for the whole line
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


class GroupKind(StrEnum):
    SCHOOL = "school"  # everyone attached to one UAI
    CLASS = "class"  # one class of one school year
    GROUP = "group"  # another group of the school (not bound to a year)


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group this tool manages, in the identity provider and in Nextcloud (same name)."""

    name: str
    kind: GroupKind
    uai: str
    label: str  # the class or group label as the directory spells it ("" for a school)
    year: int | None = None  # first calendar year of the school year, for classes
    archived_on: date | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """A managed account as the identity provider holds it."""

    id: str
    given_name: str
    family_name: str
    email: str | None
    profile: Profile
    groups: frozenset[str]  # names of managed groups only
    enabled: bool
    end_date: date | None = None
    departed_on: date | None = None  # set when the account is disabled as a departure
    login: Login = Login.FEDERATED
    uai: str = ""  # the school whose group the account is in ("" if none)


@dataclass(frozen=True)
class DirectoryState:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)


def slug(label: str) -> str:
    """A label as it may appear in a group name: ASCII, lower case, words joined by '-'."""
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_label.lower()).strip("-") or "x"


def school_group(uai: str) -> str:
    return f"etab-{uai.lower()}"


def class_group(uai: str, year: int, label: str) -> str:
    return f"classe-{uai.lower()}-{year}-{slug(label)}"


def other_group(uai: str, label: str) -> str:
    return f"groupe-{uai.lower()}-{slug(label)}"
