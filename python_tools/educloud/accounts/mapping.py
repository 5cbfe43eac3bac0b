"""Declarative mappings from an export format to the canonical account fields.

An academy adds a format by writing a YAML file, not Python. The file is checked completely
(keys, canonical fields, transforms, paths) before any row is read, and the error names the
bad key. Only the canonical fields a mapping names are ever read: every other column or
attribute of the source (a birth date, an address) is dropped at read time (C4).

Schema (see docs/accounts-mappings.md for a worked example)::

    name: siecle-eleves            # how the mapping is called (`--mapping siecle-eleves`)
    description: ...               # one line, shown to the operator (French)
    format: csv                    # csv | xml
    encoding: latin-1              # optional: skips detection (any Python codec name)
    csv: {delimiter: ";"}          # csv only; default ","
    xml: {record: addRequest}      # xml only: tag path of one record, e.g. a/b (suffix match)
    fields:                        # canonical field -> spec; `id`, `given_name`,
      id: {column: ID_ELEVE}       #   `family_name`, `profile` and `uai` are required
      given_name: {columns: [PRENOM, PRENOM2], join: " "}
      classes: {path: "attributes/attr[@name='ENTEleveClasses']/value", multiple: true}
      profile: {value: pupil}      # a constant
      start_date:
        column: DATE_ENTREE
        transforms: [strip, {date: "%d/%m/%Y"}]

A spec takes its value from exactly one of `column` (csv), `columns` + `join` (csv, empty
cells skipped), `path` (xml: an ElementTree path relative to the record, or a list of paths;
the first match unless `multiple: true`, which keeps every match) or `value`. `transforms`
apply in order to each value: strip, upper, lower, title, {date: "<strptime format>"} (to
yyyy-mm-dd; an unparsable date is left as is, so that validation reports it with its line),
{map: {FROM: to}} (unmapped values left as is), {regex: "<one group>"} (the group, or empty),
{replace: [old, new]}, {split: ","} (several values), {default: "x"} (when there is no
value). Several values end up joined with LIST_SEPARATOR, empty ones dropped.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from educloud.accounts.model import CANONICAL_FIELDS, LIST_SEPARATOR, REQUIRED_FIELDS
from educloud.errors import EducloudError

FORMATS = ("csv", "xml")
SIMPLE_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
}
TRANSFORMS = (*SIMPLE_TRANSFORMS, "date", "map", "regex", "replace", "split", "default")
_TOP_KEYS = ("name", "description", "format", "encoding", "csv", "xml", "fields")
_SPEC_KEYS = {
    "csv": ("column", "columns", "join", "value", "transforms"),
    "xml": ("path", "multiple", "value", "transforms"),
}
_SOURCE_KEYS = ("column", "columns", "path", "value")
_TAG = r"(?:\{[^}]*\})?[A-Za-z_][\w.-]*"
_RECORD_PATH = re.compile(rf"{_TAG}(?:/{_TAG})*")

# A transform maps the values of one field to new values (`split` may make several).
Transform = Callable[[list[str]], list[str]]


class MappingError(EducloudError):
    def __init__(self, origin: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"mapping {origin}: {len(self.problems)} problem(s):\n  {lines}")


@dataclass(frozen=True)
class FieldSpec:
    field: str
    columns: tuple[str, ...] = ()
    join: str = " "
    paths: tuple[str, ...] = ()
    multiple: bool = False
    value: str | None = None
    transforms: tuple[Transform, ...] = ()

    def convert(self, values: list[str]) -> str:
        for transform in self.transforms:
            values = transform(values)
        return LIST_SEPARATOR.join(value for value in values if value)


@dataclass(frozen=True)
class SourceMapping:
    name: str
    description: str
    format: str  # one of FORMATS
    fields: tuple[FieldSpec, ...]
    encoding: str | None = None
    delimiter: str = ","
    record: tuple[str, ...] = ()  # xml: tags from the outermost named one to the record's
    origin: str = ""  # the built-in name or the file it was loaded from

    def column_indexes(self, header: Sequence[str]) -> dict[str, int]:
        """Where each mapped column is in a CSV header; MappingError naming what is missing."""
        indexes: dict[str, int] = {}
        duplicated: set[str] = set()
        for index, name in enumerate(cell.strip() for cell in header):
            if name in indexes:
                duplicated.add(name)
            indexes.setdefault(name, index)
        problems = []
        for spec in self.fields:
            for column in spec.columns:
                if column not in indexes:
                    problems.append(
                        f"fields.{spec.field}: column {column!r} is not in the file's header "
                        f"(line 1: {', '.join(repr(h) for h in header)})"
                    )
                elif column in duplicated:
                    problems.append(
                        f"fields.{spec.field}: column {column!r} appears twice in the header"
                    )
        if problems:
            raise MappingError(self.origin, problems)
        return indexes

    def from_cells(self, cells: Sequence[str], indexes: Mapping[str, int]) -> dict[str, str]:
        """The canonical values of one CSV row; unnamed columns are never copied (C4)."""
        # The hot loop of a 500,000-line import: the one-column case avoids lists and joins.
        width = len(cells)
        values = {}
        for spec in self.fields:
            if spec.value is not None:
                raw = spec.value
            elif len(spec.columns) == 1:
                index = indexes[spec.columns[0]]
                raw = cells[index] if index < width else ""  # the reader reports short rows
            else:
                found = (indexes[column] for column in spec.columns)
                raw = spec.join.join(cells[i] for i in found if i < width and cells[i])
            values[spec.field] = spec.convert([raw]) if spec.transforms else raw
        return values

    def from_record(self, record: Any) -> dict[str, str]:
        """The canonical values of one XML record (an ElementTree element)."""
        values = {}
        for spec in self.fields:
            if spec.value is not None:
                raw = [spec.value]
            else:
                raw = []
                for path in spec.paths:
                    raw.extend(element.text or "" for element in record.iterfind(path))
                if not spec.multiple:
                    raw = raw[:1]
            values[spec.field] = spec.convert(raw)
        return values


def _each(function: Callable[[str], str]) -> Transform:
    def apply(values: list[str]) -> list[str]:
        return [function(value) for value in values]

    return apply


def _date(fmt: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        try:
            return datetime.strptime(value.strip(), fmt).date().isoformat()
        except ValueError:
            return value  # left for validation to report with its line

    return convert


def _regex(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        match = pattern.search(value)
        return (match.group(1) or "") if match else ""

    return convert


def _split(separator: str) -> Transform:
    def apply(values: list[str]) -> list[str]:
        return [part for value in values for part in value.split(separator)]

    return apply


def _default(default: str) -> Transform:
    def apply(values: list[str]) -> list[str]:
        return values if any(values) else [default]

    return apply


def _parse_transform(spec: Any, where: str, problems: list[str]) -> Transform | None:
    known = ", ".join(TRANSFORMS)
    if isinstance(spec, str):
        if spec in SIMPLE_TRANSFORMS:
            return _each(SIMPLE_TRANSFORMS[spec])
        problems.append(f"{where}: unknown transform {spec!r} (known: {known})")
        return None
    if not isinstance(spec, dict) or len(spec) != 1:
        problems.append(f"{where}: a transform is a name or a one-key mapping (known: {known})")
        return None
    ((kind, argument),) = spec.items()
    where = f"{where}.{kind}"
    if kind == "date" and isinstance(argument, str) and "%" in argument:
        return _each(_date(argument))
    if kind == "map" and isinstance(argument, dict):
        bad = [k for k, v in argument.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            # YAML reads yes/no/on/off and numbers as non-strings: quoting fixes it.
            problems.append(f"{where}: keys and values must be strings (quote {bad[0]!r})")
            return None
        table: dict[str, str] = dict(argument)
        return _each(lambda value: table.get(value, value))
    if kind == "regex" and isinstance(argument, str):
        try:
            pattern = re.compile(argument)
        except re.error as exc:
            problems.append(f"{where}: not a valid regular expression: {exc}")
            return None
        if pattern.groups != 1:
            problems.append(f"{where}: needs exactly one group, has {pattern.groups}")
            return None
        return _each(_regex(pattern))
    if (
        kind == "replace"
        and isinstance(argument, list)
        and len(argument) == 2
        and all(isinstance(part, str) for part in argument)
        and argument[0]
    ):
        old, new = argument
        return _each(lambda value: value.replace(old, new))
    if kind == "split" and isinstance(argument, str) and argument:
        return _split(argument)
    if kind == "default" and isinstance(argument, str):
        return _default(argument)
    usage = {
        "date": '{date: "%d/%m/%Y"} (a strptime format)',
        "map": "{map: {FROM: to, ...}}",
        "regex": '{regex: "pattern with (one) group"}',
        "replace": "{replace: [old, new]} (old not empty)",
        "split": '{split: ","} (not empty)',
        "default": '{default: "value"}',
    }
    if kind in usage:
        problems.append(f"{where}: expected {usage[kind]}, got {argument!r}")
    else:
        problems.append(f"{where}: unknown transform {kind!r} (known: {known})")
    return None


def _valid_xml_path(path: str) -> str | None:
    """Why an ElementTree path cannot be used on a record, or None."""
    if path.startswith("/"):
        return "must be relative to the record (no leading '/')"
    try:
        ElementTree.Element("record").findall(path)
    except (SyntaxError, KeyError, ValueError) as exc:
        return f"not a valid ElementTree path: {exc}"
    return None


def _parse_field(field: Any, spec: Any, fmt: str, problems: list[str]) -> FieldSpec | None:
    where = f"fields.{field}"
    if field not in CANONICAL_FIELDS:
        problems.append(
            f"{where}: {field!r} is not a canonical field (known: {', '.join(CANONICAL_FIELDS)})"
        )
        return None
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a mapping such as {{column: Header}}")
        return None
    allowed = _SPEC_KEYS[fmt]
    before = len(problems)
    for key in spec:
        if key not in allowed:
            problems.append(
                f"{where}.{key}: unknown key for a {fmt} mapping (known: {', '.join(allowed)})"
            )
    sources = [key for key in _SOURCE_KEYS if key in spec]
    if len(sources) != 1:
        choices = " or ".join(k for k in _SOURCE_KEYS if k in allowed)
        problems.append(f"{where}: needs exactly one of {choices}, has {sources or 'none'}")
    transforms = []
    raw_transforms = spec.get("transforms", [])
    if not isinstance(raw_transforms, list):
        problems.append(f"{where}.transforms: must be a list")
        raw_transforms = []
    for index, raw in enumerate(raw_transforms):
        transform = _parse_transform(raw, f"{where}.transforms[{index}]", problems)
        if transform is not None:
            transforms.append(transform)
    columns: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    value = spec.get("value")
    if "column" in spec:
        columns = (spec["column"],)
    if "columns" in spec:
        columns = tuple(spec["columns"]) if isinstance(spec["columns"], list) else ()
        if not columns:
            problems.append(f"{where}.columns: must be a non-empty list of headers")
    if not all(isinstance(column, str) and column.strip() for column in columns):
        problems.append(f"{where}: a column is a header name (a non-empty string)")
    if "path" in spec:
        raw_paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        paths = tuple(raw_paths)
        for path in raw_paths:
            why = _valid_xml_path(path) if isinstance(path, str) and path else "must be a string"
            if why:
                problems.append(f"{where}.path: {path!r} {why}")
    if "value" in spec and not isinstance(value, str):
        problems.append(f"{where}.value: must be a string (quote it)")
    join = spec.get("join", " ")
    if not isinstance(join, str):
        problems.append(f"{where}.join: must be a string")
    multiple = spec.get("multiple", False)
    if not isinstance(multiple, bool):
        problems.append(f"{where}.multiple: must be true or false")
    if len(problems) > before:
        return None
    return FieldSpec(
        field=field,
        columns=columns,
        join=join,
        paths=paths,
        multiple=multiple,
        value=value,
        transforms=tuple(transforms),
    )


def parse_mapping(data: Any, origin: str) -> SourceMapping:
    """Check a mapping document completely; MappingError lists every bad key."""
    if not isinstance(data, dict):
        raise MappingError(origin, ["(top): must be a mapping with name, format and fields"])
    problems: list[str] = []
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key (known: {', '.join(_TOP_KEYS)})")
    for key in ("name", "format", "fields"):
        if key not in data:
            problems.append(f"{key}: is missing")
    name = data.get("name", "")
    if "name" in data and not (isinstance(name, str) and name):
        problems.append("name: must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("description: must be a string")
    fmt = data.get("format")
    if "format" in data and fmt not in FORMATS:
        problems.append(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    encoding = data.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            problems.append(f"encoding: {encoding!r} is not a known encoding (e.g. latin-1)")
    for other in FORMATS:
        if other in data and other != fmt:
            problems.append(f"{other}: only for format: {other}")
    delimiter = ","
    record: tuple[str, ...] = ()
    csv_options = data.get("csv", {})
    if fmt == "csv":
        if not isinstance(csv_options, dict) or set(csv_options) - {"delimiter"}:
            problems.append('csv: the only option is delimiter (csv: {delimiter: ";"})')
        else:
            delimiter = csv_options.get("delimiter", ",")
            if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
                problems.append(f"csv.delimiter: {delimiter!r} is not one character")
    xml_options = data.get("xml")
    if fmt == "xml":
        if not isinstance(xml_options, dict) or set(xml_options) != {"record"}:
            problems.append("xml: needs record, the tag path of one record (xml: {record: a/b})")
        elif not isinstance(xml_options["record"], str) or not _RECORD_PATH.fullmatch(
            xml_options["record"]
        ):
            problems.append(f"xml.record: {xml_options['record']!r} is not a tag path like a/b")
        else:
            record = tuple(re.findall(_TAG, xml_options["record"]))
    fields: list[FieldSpec] = []
    raw_fields = data.get("fields", {})
    if not isinstance(raw_fields, dict):
        problems.append("fields: must map canonical fields to specs")
    elif fmt in FORMATS:
        for field, spec in raw_fields.items():
            parsed = _parse_field(field, spec, fmt, problems)
            if parsed is not None:
                fields.append(parsed)
        missing = sorted(REQUIRED_FIELDS - set(raw_fields))
        if missing:
            problems.append(f"fields: lacks the required field(s) {', '.join(missing)}")
    if problems:
        raise MappingError(origin, problems)
    return SourceMapping(
        name=name,
        description=description,
        format=str(fmt),
        fields=tuple(fields),
        encoding=encoding,
        delimiter=delimiter,
        record=record,
        origin=origin,
    )


def builtin_mappings() -> tuple[str, ...]:
    """The names of the mappings shipped with educloud."""
    folder = resources.files("educloud") / "data" / "mappings"
    return tuple(sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml")))


def load_mapping(name_or_path: str | Path) -> SourceMapping:
    """A built-in mapping by name (`siecle-eleves`) or a mapping file by path."""
    text = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or "/" in text or text.endswith((".yml", ".yaml"))
    if is_path:
        path = Path(name_or_path)
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EducloudError(f"cannot read mapping {path}: {exc}") from exc
        origin = str(path)
    else:
        if text not in builtin_mappings():
            raise EducloudError(
                f"no built-in mapping named {text!r} (built-in: "
                f"{', '.join(builtin_mappings())}; or give the path of a .yml file)"
            )
        resource = resources.files("educloud") / "data" / "mappings" / f"{text}.yml"
        content = resource.read_text(encoding="utf-8")
        origin = text
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise MappingError(origin, [f"(top): not valid YAML: {exc}".replace("\n", " ")]) from exc
    return parse_mapping(data, origin)
