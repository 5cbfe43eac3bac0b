"""The input side of `educloud accounts`: policy, mappings, readers and validation."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from educloud.accounts.mapping import MappingError, load_mapping, parse_mapping
from educloud.accounts.model import CANONICAL_FIELDS, Login, Profile
from educloud.accounts.policy import AccountsPolicy, load_policy, school_year
from educloud.accounts.readers import SourceRow, open_source
from educloud.accounts.validate import Validated, uai_check_letter, validate
from educloud.errors import EducloudError
from educloud.paths import policies_dir
from educloud.policy import PolicyError

DATA = Path(__file__).parent / "data" / "accounts"
HEADER = ",".join(CANONICAL_FIELDS)
PUPIL = "p.dupont01,Jeanne,Dupont,,pupil,0750654D,3A,,2024-09-01,,"
TEACHER = "t.martin01,Paul,Martin,paul.martin@example.org,teacher,0750654D,3A,,,,"


def _write(tmp_path: Path, data: bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _canonical(tmp_path: Path, *lines: str) -> Path:
    return _write(tmp_path, "\n".join((HEADER, *lines, "")).encode())


def _rows(path: Path, mapping: str = "canonical", encoding: str | None = None) -> list[SourceRow]:
    return list(open_source(path, load_mapping(mapping), encoding).rows())


def _check(tmp_path: Path, *lines: str) -> Validated:
    return validate(_rows(_canonical(tmp_path, *lines)), AccountsPolicy())


# --- policy -------------------------------------------------------------------------------


def test_repository_policy_keeps_the_documented_defaults() -> None:
    assert load_policy() == AccountsPolicy(grace_days=90)


def test_grace_days_come_from_retention(tmp_path: Path) -> None:
    retention = yaml.safe_load((policies_dir() / "retention.yml").read_text(encoding="utf-8"))
    retention["categories"]["accounts"]["retention_days"] = 30
    (tmp_path / "retention.yml").write_text(yaml.safe_dump(retention), encoding="utf-8")
    (tmp_path / "accounts.yml").write_text("", encoding="utf-8")
    assert load_policy(tmp_path).grace_days == 30


def test_bad_policy_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "retention.yml").write_bytes((policies_dir() / "retention.yml").read_bytes())
    (tmp_path / "accounts.yml").write_text("email_kept_for: [pupils]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"email_kept_for\[0\]: 'pupils' is not a profile"):
        load_policy(tmp_path)


@pytest.mark.parametrize(
    ("today", "year"),
    [(date(2024, 8, 31), 2023), (date(2024, 9, 1), 2024), (date(2025, 1, 15), 2024)],
)
def test_school_year_starts_on_the_first_of_september(today: date, year: int) -> None:
    assert school_year(today, AccountsPolicy()) == year


# --- encodings ----------------------------------------------------------------------------

LATIN1_LINE = "p.garcon01,François,Garçon,,pupil,0750654D,3A,,,,"
# U+2019 (right quote) is byte 0x92 in cp1252, a C1 control in Latin-1.
CP1252_LINE = "p.doe0001,Zoë,N\u2019Diaye,,pupil,0750654D,3A,,,,"


def test_utf8_is_detected(tmp_path: Path) -> None:
    source = open_source(_canonical(tmp_path, LATIN1_LINE), load_mapping("canonical"))
    assert (source.encoding, source.encoding_reason) == ("utf-8", "valid UTF-8")
    assert next(source.rows()).values["given_name"] == "François"


def test_utf8_bom_is_detected_and_not_part_of_the_header(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + f"{HEADER}\n{LATIN1_LINE}\n".encode())
    source = open_source(path, load_mapping("canonical"))
    assert source.encoding_reason == "BOM"
    assert next(source.rows()).values["id"] == "p.garcon01"


def test_latin1_is_detected_with_its_reason(tmp_path: Path) -> None:
    path = _write(tmp_path, f"{HEADER}\n{PUPIL}\n{LATIN1_LINE}\n".encode("latin-1"))
    source = open_source(path, load_mapping("canonical"))
    assert source.encoding == "latin-1"
    assert source.encoding_reason == (
        "not valid UTF-8 (line 3), no C1 control bytes: read as Latin-1"
    )
    assert [row.values["family_name"] for row in source.rows()] == ["Dupont", "Garçon"]


def test_cp1252_only_bytes_are_refused_without_an_encoding(tmp_path: Path) -> None:
    line = CP1252_LINE
    path = _write(tmp_path, f"{HEADER}\n{line}\n".encode("cp1252"))
    with pytest.raises(EducloudError, match="--encoding cp1252"):
        open_source(path, load_mapping("canonical"))


def test_given_encoding_wins(tmp_path: Path) -> None:
    line = CP1252_LINE
    path = _write(tmp_path, f"{HEADER}\n{line}\n".encode("cp1252"))
    source = open_source(path, load_mapping("canonical"), encoding="cp1252")
    assert source.encoding_reason == "given"
    assert next(source.rows()).values["family_name"] == "N\u2019Diaye"


# --- built-in mappings --------------------------------------------------------------------

SAME_PUPIL = ("given_name", "family_name", "profile", "uai", "classes")


@pytest.mark.parametrize(
    ("mapping", "fixture"),
    [("siecle-eleves", "siecle-eleves.csv"), ("aaf-xml", "aaf-eleves.xml")],
)
def test_formats_give_the_canonical_values(mapping: str, fixture: str) -> None:
    expected = _rows(DATA / "canonical.csv")[0].values
    first = _rows(DATA / fixture, mapping)[0].values
    assert {f: first[f] for f in SAME_PUPIL} == {f: expected[f] for f in SAME_PUPIL}


def test_siecle_dates_become_iso_and_birth_date_is_not_read() -> None:
    rows = _rows(DATA / "siecle-eleves.csv", "siecle-eleves")
    assert (rows[1].values["start_date"], rows[1].values["end_date"]) == (
        "2024-09-01",
        "2025-07-05",
    )
    assert all(set(row.values) <= set(CANONICAL_FIELDS) for row in rows)
    assert not any("2011" in value for row in rows for value in row.values.values())


def test_aaf_records_carry_their_line_and_teacher_classes() -> None:
    rows = _rows(DATA / "aaf-eleves.xml", "aaf-xml")
    assert [row.line for row in rows] == [3, 18, 31]
    assert rows[1].values["profile"] == "teacher"
    assert rows[1].values["classes"] == "3A|4B"
    assert not any("2011" in value for row in rows for value in row.values.values())


def test_pupil_email_is_dropped_and_teacher_email_kept() -> None:
    validated = validate(_rows(DATA / "aaf-eleves.xml", "aaf-xml"), AccountsPolicy())
    assert validated.problems == []
    assert [a.email for a in validated.accounts] == [None, "remi.garcon@example.org", None]


def test_xml_with_an_entity_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        b'<!DOCTYPE r [<!ENTITY x "boom">]><r><addRequest><identifier><id>&x;</id>'
        b"</identifier></addRequest></r>",
        "bomb.xml",
    )
    with pytest.raises(EducloudError, match="refused"):
        _rows(path, "aaf-xml")


# --- mapping files ------------------------------------------------------------------------

GOOD_MAPPING = {
    "name": "test",
    "format": "csv",
    "fields": {f: {"column": f} for f in ("id", "given_name", "family_name", "profile", "uai")},
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"fields": {**GOOD_MAPPING["fields"], "birth_date": {"column": "x"}}}, "birth_date"),
        (
            {"fields": {**GOOD_MAPPING["fields"], "uai": {"column": "U", "transforms": ["cap"]}}},
            "fields.uai.transforms[0]: unknown transform 'cap'",
        ),
        (
            {
                "fields": {
                    **GOOD_MAPPING["fields"],
                    "uai": {"column": "U", "transforms": [{"regex": "no group"}]},
                }
            },
            "fields.uai.transforms[0].regex",
        ),
        ({"fields": {**GOOD_MAPPING["fields"], "uai": {"path": "a/b"}}}, "fields.uai.path"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"format": "json"}, "format: 'json'"),
        ({"fields": {"id": {"column": "id"}}}, "lacks the required field(s) family_name"),
    ],
)
def test_bad_mapping_names_the_bad_key(change: dict[str, object], named: str) -> None:
    with pytest.raises(MappingError) as error:
        parse_mapping({**GOOD_MAPPING, **change}, "test.yml")
    assert named in str(error.value)


def test_mapping_file_is_checked_against_the_header_before_any_row(tmp_path: Path) -> None:
    path = _write(tmp_path, b"ID_ELEVE;NOM;PRENOM;DIVISION\n1;A;B;3A\n")
    with pytest.raises(MappingError, match="column 'CODE_RNE' is not in the file's header"):
        open_source(path, load_mapping("siecle-eleves"))


def test_unknown_builtin_mapping_lists_the_known_ones() -> None:
    with pytest.raises(EducloudError, match="siecle-eleves"):
        load_mapping("siecle")


# --- validation ---------------------------------------------------------------------------


def test_valid_lines_become_accounts_with_policy_defaults(tmp_path: Path) -> None:
    pupil = "P.Dupont01,Jeanne,Dupont,jeanne@example.org,pupil,0750654d, 3A |3A,b|a,,,"
    validated = _check(tmp_path, pupil, TEACHER)
    assert validated.problems == []
    first, teacher = validated.accounts
    assert (first.id, first.email, first.uai, first.classes, first.groups) == (
        "P.Dupont01",
        None,
        "0750654D",
        ("3A",),
        ("a", "b"),
    )
    assert (first.profile, first.login, teacher.login) == (
        Profile.PUPIL,
        Login.LOCAL,
        Login.FEDERATED,
    )


def _line(**values: str) -> str:
    """A pupil line like PUPIL but with its own id, with some values changed."""
    fields = dict(zip(CANONICAL_FIELDS, PUPIL.split(","), strict=True)) | {"id": "p.leroy01"}
    fields |= values
    return ",".join(fields[f] for f in CANONICAL_FIELDS)


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        (_line(family_name=""), "family_name", "missing"),
        (_line(id="a b"), "id", "not a valid id"),
        (_line(profile="eleve"), "profile", "not one of"),
        (_line(uai="075065D"), "uai", "not a UAI"),
        (_line(uai="0750654E"), "uai", "0750654D expected"),
        (_line(given_name="=HYPERLINK(x)"), "given_name", "formula-like"),
        (_line(family_name="@SUM(1)"), "family_name", "formula-like"),
        (_line(given_name="Jea\x07nne"), "given_name", "control character"),
        (_line(family_name="D" * 101), "family_name", "more than 100"),
        (_line(profile="teacher", email="paul.example.org", classes=""), "email", "e-mail"),
        (_line(start_date="01/09/2024"), "start_date", "yyyy-mm-dd"),
        (_line(end_date="2024-08-31"), "end_date", "before start_date"),
        (_line(login="password"), "login", "not one of"),
        (_line(classes="3A|4B"), "classes", "at most 1"),
        (_line(groups="latin/grec"), "groups", "'/'"),
        (_line(groups="+1"), "groups", "formula-like"),
        (_line(groups="x" * 41), "groups", "more than 40"),
    ],
)
def test_each_problem_is_reported_on_its_line(
    tmp_path: Path, line: str, field: str, fragment: str
) -> None:
    validated = _check(tmp_path, PUPIL, line)
    assert [(p.line, p.field) for p in validated.problems] == [(3, field)]
    assert fragment in validated.problems[0].message
    assert [a.id for a in validated.accounts] == ["p.dupont01"]


def test_pupil_email_is_not_checked(tmp_path: Path) -> None:
    validated = _check(tmp_path, _line(email="=not an address"))
    assert validated.problems == []
    assert validated.accounts[0].email is None


def test_duplicate_id_ignores_case_and_names_the_first_line(tmp_path: Path) -> None:
    validated = _check(tmp_path, PUPIL, TEACHER, _line(id="P.DUPONT01"))
    assert [str(p) for p in validated.problems] == [
        "line 4: id: 'P.DUPONT01' is already on line 2 (ids ignore case)"
    ]


def test_class_no_pupil_is_in_is_unknown(tmp_path: Path) -> None:
    teacher = (
        TEACHER.replace("t.martin01", "t.roux0001")
        .replace("paul.martin@", "paul.roux@")
        .replace(",3A,", ",3A|5C,")
    )
    other_school = _line(id="p.autre01", uai="0750655E", classes="5C")
    validated = _check(tmp_path, PUPIL, teacher, other_school, TEACHER)
    assert [(p.line, p.field) for p in validated.problems] == [(3, "classes")]
    assert "unknown class 5C" in validated.problems[0].message
    assert [a.id for a in validated.accounts] == ["p.dupont01", "p.autre01", "t.martin01"]


def test_quoted_multiline_cell_shifts_the_lines(tmp_path: Path) -> None:
    multiline = _line(id="p.durand01", given_name='"Jeanne\nMarie"')
    validated = _check(tmp_path, multiline, _line(id="p.petit01", profile="x"))
    assert [(p.line, p.field) for p in validated.problems] == [
        (2, "given_name"),
        (4, "profile"),
    ]


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    validated = _check(
        tmp_path,
        _line(id="x", uai="0750654E"),
        PUPIL,
        _line(id="p.b0001", login="sso"),
        _line(id="p.c0001", family_name=""),
    )
    assert [(p.line, p.field) for p in validated.problems] == [
        (2, "id"),
        (2, "uai"),
        (4, "login"),
        (5, "family_name"),
    ]


def test_a_row_wider_than_the_header_is_reported(tmp_path: Path) -> None:
    validated = _check(tmp_path, PUPIL + ",Dupont")
    assert [(p.line, p.field) for p in validated.problems] == [(2, "")]
    assert "12 cells where the header has 11" in validated.problems[0].message


@pytest.mark.parametrize("uai", ["0750654D", "0750655E"])  # Louis-le-Grand, Henri-IV
def test_uai_check_letter_of_known_schools(uai: str) -> None:
    assert uai_check_letter(uai[:7]) == uai[7]


# --- round trip ---------------------------------------------------------------------------

_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@given(st.lists(_cell, min_size=len(CANONICAL_FIELDS), max_size=len(CANONICAL_FIELDS)))
def test_canonical_row_reads_back_as_written(cells: list[str]) -> None:
    # A row of empty cells carries nothing and is skipped as a blank line: keep the id.
    cells[0] = cells[0] or "x"
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([CANONICAL_FIELDS, cells])
    # hypothesis forbids function-scoped fixtures such as tmp_path: one file per example.
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), buffer.getvalue().encode())
        rows = _rows(path)
    assert [row.values for row in rows] == [dict(zip(CANONICAL_FIELDS, cells, strict=True))]


def test_one_address_on_two_accounts_is_refused_whatever_its_case(tmp_path: Path) -> None:
    twin = TEACHER.replace("t.martin01", "t.martin02").replace("paul.martin@", "Paul.Martin@")
    validated = _check(tmp_path, PUPIL, TEACHER, twin)
    assert [str(p) for p in validated.problems] == [
        "line 4: email: 'Paul.Martin@example.org' is already on line 3: one address, one account"
    ]
    assert validated.accounts[1].email == "paul.martin@example.org"  # as Keycloak stores it


def test_name_with_a_character_keycloak_refuses_is_a_problem(tmp_path: Path) -> None:
    validated = _check(tmp_path, PUPIL.replace("Dupont", "Dupont (Mme)"))
    assert [(p.line, p.field) for p in validated.problems] == [(2, "family_name")]


def test_two_labels_of_one_group_name_are_a_problem(tmp_path: Path) -> None:
    other = _line(id="p.durand01", classes="3a")
    validated = _check(tmp_path, PUPIL, other)
    assert [(p.line, p.field) for p in validated.problems] == [(3, "classes")]
    assert "would be one group" in validated.problems[0].message


def test_staff_only_file_has_no_unknown_class(tmp_path: Path) -> None:
    validated = _check(tmp_path, TEACHER)
    assert validated.problems == []
