"""Printable initial-credential sheets for pupils who log in with a local password.

A pupil without a federated login gets a generated password that is never logged: it exists
only in the identity provider (hashed, to change at first login) and on one slip of the class
sheet handed out by the teacher. One self-contained HTML file per class (and optionally its
PDF), no external resource (C3), readable only by the operator (0600 files, 0700 directories).
"""

from __future__ import annotations

import os
import re
import secrets
import string
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from educloud.accounts.model import slug
from educloud.errors import EducloudError
from educloud.pdf import print_pdf

# Characters a child can read and type without confusion: no 0/O/o and no 1/l/I.
_CONFUSABLE = frozenset("0Oo1lI")
PASSWORD_UPPER = "".join(c for c in string.ascii_uppercase if c not in _CONFUSABLE)
PASSWORD_LOWER = "".join(c for c in string.ascii_lowercase if c not in _CONFUSABLE)
PASSWORD_DIGITS = "".join(c for c in string.digits if c not in _CONFUSABLE)
PASSWORD_ALPHABET = PASSWORD_UPPER + PASSWORD_LOWER + PASSWORD_DIGITS
# The realm's password policy is `length(12) and notUsername and notEmail`.
MIN_PASSWORD_LENGTH = 12

# The sheet of pupils the export gives no class (its label is empty).
NO_CLASS_LABEL = "sans classe"
NO_CLASS_STEM = "sans-classe"
# A UAI is 7 digits and a letter; anything but letters and digits must not reach a path.
_SAFE_UAI = re.compile(r"[0-9A-Za-z]+")


@dataclass(frozen=True)
class CredentialSlip:
    """One pupil's first-login credentials, as printed on their slip."""

    account_id: str
    given_name: str
    family_name: str
    uai: str
    class_label: str
    login: str
    password: str = field(repr=False)


def generate_password(length: int = 14) -> str:
    """A random password from the unambiguous alphabet, with an upper, a lower and a digit.

    Drawn with `secrets` and redrawn until every class is present, so every valid password is
    equally likely. Random over 56 characters, it never equals a login or an e-mail address
    in practice (the realm's notUsername and notEmail).
    """
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"password length {length} is below the realm policy's {MIN_PASSWORD_LENGTH}"
        )
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if (
            any(c in PASSWORD_UPPER for c in password)
            and any(c in PASSWORD_LOWER for c in password)
            and any(c in PASSWORD_DIGITS for c in password)
        ):
            return password


@dataclass(frozen=True)
class _ClassSheet:
    uai: str
    class_label: str
    file_stem: str  # slug of the class label: the file's name without suffix
    slips: tuple[CredentialSlip, ...]  # sorted by family then given name

    @property
    def relative_html(self) -> str:
        return f"{self.uai}/{self.file_stem}.html"


def _sort_key(text: str) -> str:
    # Accents do not change the order ("Émile" next to "Emma"), as in a class list.
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()


def _class_sheets(slips: Iterable[CredentialSlip]) -> list[_ClassSheet]:
    by_class: dict[tuple[str, str], list[CredentialSlip]] = {}
    for slip in slips:
        if not _SAFE_UAI.fullmatch(slip.uai):
            raise EducloudError(
                f"account {slip.account_id}: UAI {slip.uai!r} is not letters and digits; "
                "fix the directory export"
            )
        by_class.setdefault((slip.uai, slip.class_label), []).append(slip)
    sheets: list[_ClassSheet] = []
    stems: dict[tuple[str, str], str] = {}
    for (uai, label), members in sorted(by_class.items()):
        stem = slug(label) if label.strip() else NO_CLASS_STEM
        if (uai, stem) in stems:
            raise EducloudError(
                f"school {uai}: classes {stems[(uai, stem)]!r} and {label!r} would share the "
                f"sheet {stem}.html; give them distinct labels in the directory export"
            )
        stems[(uai, stem)] = label
        members.sort(
            key=lambda s: (
                _sort_key(s.family_name),
                _sort_key(s.given_name),
                s.family_name,
                s.given_name,
                s.account_id,
            )
        )
        sheets.append(_ClassSheet(uai, label, stem, tuple(members)))
    return sheets


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("educloud", "data"),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # an older run or a wider umask may have left it open


def _write_private(path: Path, content: str) -> None:
    """Write `content` to `path` mode 0600, all or nothing (a reader never sees half a sheet)."""
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp creates it 0600
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def render_class_sheets(
    slips: Iterable[CredentialSlip],
    out_dir: Path,
    *,
    login_url: str,
    school_names: Mapping[str, str] | None = None,
    pdf: bool = False,
    chromium: str = "chromium",
) -> list[Path]:
    """Write one sheet of cut-out slips per class: `out_dir/<uai>/<class-slug>.html` (and .pdf).

    Returns every file written, HTML then PDF for each class, classes sorted by UAI and label.
    Files are 0600 and their directories 0700: they hold passwords.
    """
    names = dict(school_names or {})
    template = _environment().get_template("credential-sheet.html.j2")
    generated_on = date.today().isoformat()
    written: list[Path] = []
    if not out_dir.exists():
        _private_dir(out_dir)
    for sheet in _class_sheets(slips):
        school_dir = out_dir / sheet.uai
        _private_dir(school_dir)
        html = school_dir / f"{sheet.file_stem}.html"
        _write_private(
            html,
            template.render(
                uai=sheet.uai,
                school_name=names.get(sheet.uai),
                class_label=sheet.class_label.strip() or NO_CLASS_LABEL,
                slips=sheet.slips,
                login_url=login_url,
                generated_on=generated_on,
            ),
        )
        written.append(html)
        if pdf:
            pdf_path = html.with_suffix(".pdf")
            print_pdf(html, pdf_path, chromium, document="the credential sheets")
            written.append(pdf_path)
    return written


def write_index(
    slips: Iterable[CredentialSlip],
    out_dir: Path,
    *,
    school_names: Mapping[str, str] | None = None,
) -> Path:
    """Write `out_dir/index.html`: the class sheets with their pupil counts, no password."""
    names = dict(school_names or {})
    sheets = _class_sheets(slips)
    page = (
        _environment()
        .get_template("credential-index.html.j2")
        .render(sheets=sheets, school_names=names, generated_on=date.today().isoformat())
    )
    if not out_dir.exists():
        _private_dir(out_dir)
    index = out_dir / "index.html"
    _write_private(index, page)
    return index
