"""Read a directory export row by row, whatever its size, in canonical fields only.

Memory stays bounded: a file is streamed (once to check its encoding when that is not given,
once to read it), never loaded. Each row comes with its physical line in the file so that
every problem can be pointed at. Only the fields the mapping names are kept (C4).

Encoding: the issue asks that "the encoding is detected or given, never guessed silently".
A given encoding wins (`--encoding`, then the mapping's); else a BOM; else, for XML, the
declaration; else a pass over the bytes: valid UTF-8 is UTF-8, and bytes that are not UTF-8
but have nothing in 0x80-0x9F are Latin-1. Anything else (Windows-1252 curly quotes, the
euro sign) is refused with a request to give the encoding. The reason is kept for the CLI.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from educloud.accounts.mapping import SourceMapping
from educloud.accounts.model import Problem
from educloud.errors import EducloudError

_CHUNK = 1 << 16
# Latin-1 maps these bytes to C1 control characters, which no real name contains: their
# presence means Windows-1252 (or worse), where reading as Latin-1 would garble text.
_C1_BYTES = re.compile(rb"[\x80-\x9f]")
_XML_DECLARED = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class SourceRow:
    line: int  # physical line where the record starts (the CSV header is line 1)
    values: dict[str, str]  # canonical field -> value, only the fields the mapping names
    problems: tuple[Problem, ...] = ()  # what the reader found wrong with the line's shape


def _known_codec(encoding: str, where: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise EducloudError(
            f"{where}: unknown encoding {encoding!r} (use e.g. utf-8, latin-1 or cp1252)"
        ) from exc
    return encoding


def _sniff_utf8(path: Path) -> tuple[int | None, bool]:
    """The line of the first byte that is not UTF-8 (None if all are), and whether any C1 byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    bad_line: int | None = None
    has_c1 = False
    newlines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if bad_line is None:
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad_line = newlines + chunk[: max(exc.start - pending, 0)].count(b"\n") + 1
            has_c1 = has_c1 or _C1_BYTES.search(chunk) is not None
            if bad_line is not None and has_c1:
                break
            newlines += chunk.count(b"\n")
        if bad_line is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                bad_line = newlines + 1  # the file ends inside a multi-byte character
    return bad_line, has_c1


def detect_encoding(path: Path, mapping: SourceMapping, given: str | None) -> tuple[str, str]:
    """The encoding to read `path` with, and why (shown to the operator)."""
    if given:
        return _known_codec(given, "--encoding"), "given"
    if mapping.encoding:
        return mapping.encoding, f"given by the mapping {mapping.name}"
    with path.open("rb") as handle:
        head = handle.read(1024)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, "BOM"
    declared = _XML_DECLARED.match(head) if mapping.format == "xml" else None
    if declared:
        return _known_codec(declared.group(1).decode(), f"{path}: XML declaration"), (
            "XML declaration"
        )
    bad_line, has_c1 = _sniff_utf8(path)
    if bad_line is None:
        return "utf-8", "valid UTF-8"
    if not has_c1:
        return "latin-1", (
            f"not valid UTF-8 (line {bad_line}), no C1 control bytes: read as Latin-1"
        )
    raise EducloudError(
        f"{path}: not valid UTF-8 (line {bad_line}) and it has bytes 0x80-0x9F, so it is not "
        "Latin-1 either: probably Windows-1252; give the encoding (--encoding cp1252, or "
        "--encoding latin-1)"
    )


def _open_text(path: Path, encoding: str) -> IO[str]:
    # newline="" lets the csv module see every physical line end, quoted ones included.
    return path.open(encoding=encoding, newline="")


def _not_decodable(path: Path, encoding: str, line: int, exc: UnicodeDecodeError) -> EducloudError:
    return EducloudError(
        f"{path}: line {line}: not valid {encoding} ({exc.reason}): give the file's encoding "
        "(--encoding utf-8, latin-1 or cp1252)"
    )


def _csv_header(path: Path, mapping: SourceMapping, encoding: str) -> list[str]:
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=mapping.delimiter)
        try:
            for cells in reader:
                if any(cells):
                    return cells
        except csv.Error as exc:
            raise EducloudError(f"{path}: line {reader.line_num}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise _not_decodable(path, encoding, reader.line_num + 1, exc) from exc
    raise EducloudError(f"{path}: empty file: the first line must be the header")


class _LineTracker:
    """An ElementTree target that remembers the source line where each record starts."""

    def __init__(self, record_tag: str) -> None:
        self.builder = TreeBuilder()
        self.record_tag = record_tag
        self.expat: Any = None  # set once the parser exists
        self.lines: dict[int, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Any:
        element = self.builder.start(tag, attrs)
        if _local(tag) == self.record_tag:
            self.lines[id(element)] = self.expat.CurrentLineNumber
        return element

    def end(self, tag: str) -> Any:
        return self.builder.end(tag)

    def data(self, data: str) -> None:
        self.builder.data(data)

    def close(self) -> Any:
        return self.builder.close()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass(frozen=True)
class Source:
    """An export file ready to be read: its encoding is settled and its header checked."""

    path: Path
    mapping: SourceMapping
    encoding: str
    encoding_reason: str
    column_indexes: dict[str, int] = field(default_factory=dict, repr=False)

    def rows(self) -> Iterator[SourceRow]:
        """Every record of the file, in order, one at a time."""
        if self.mapping.format == "xml":
            return self._xml_rows()
        return self._csv_rows()

    def _csv_rows(self) -> Iterator[SourceRow]:
        width = max(self.column_indexes.values(), default=-1) + 1
        with _open_text(self.path, self.encoding) as handle:
            reader = csv.reader(handle, delimiter=self.mapping.delimiter)
            header_seen = False
            header_width = 0
            last_line = 0
            try:
                for cells in reader:
                    first_line, last_line = last_line + 1, reader.line_num
                    if not any(cells):
                        continue  # blank lines and the ";;;;" rows spreadsheets append
                    if not header_seen:
                        header_seen = True
                        header_width = len(cells)
                        continue
                    problems: tuple[Problem, ...] = ()
                    extra = cells[header_width:]
                    if len(cells) < width or any(cell.strip() for cell in extra):
                        problems = (
                            Problem(
                                first_line,
                                "",
                                f"{len(cells)} cells where the header has {header_width}: "
                                f"quote values that contain {self.mapping.delimiter!r}",
                            ),
                        )
                    values = self.mapping.from_cells(cells, self.column_indexes)
                    yield SourceRow(first_line, values, problems)
            except csv.Error as exc:
                raise EducloudError(f"{self.path}: line {reader.line_num}: {exc}") from exc
            except UnicodeDecodeError as exc:
                raise _not_decodable(self.path, self.encoding, last_line + 1, exc) from exc

    def _xml_rows(self) -> Iterator[SourceRow]:
        record = self.mapping.record
        tracker = _LineTracker(_local(record[-1]))
        parser = DefusedXMLParser(target=tracker)
        tracker.expat = parser.parser
        tags: list[str] = []
        elements: list[Any] = []
        ordinal = 0
        with _open_text(self.path, self.encoding) as handle:
            try:
                for event, element in iterparse(handle, events=("start", "end"), parser=parser):
                    if event == "start":
                        tags.append(_local(element.tag))
                        elements.append(element)
                        continue
                    line = tracker.lines.pop(id(element), None)
                    if tuple(tags[-len(record) :]) == tuple(_local(t) for t in record):
                        ordinal += 1
                        yield SourceRow(line or ordinal, self.mapping.from_record(element))
                        # Drop the record from the tree, or a big file would stay in memory.
                        element.clear()
                        if len(elements) > 1:
                            elements[-2].remove(element)
                    tags.pop()
                    elements.pop()
            except ParseError as exc:
                raise EducloudError(f"{self.path}: not well-formed XML: {exc}") from exc
            except DefusedXmlException as exc:
                raise EducloudError(
                    f"{self.path}: refused: {exc} (a directory export needs no DTD or entity)"
                ) from exc
            except UnicodeDecodeError as exc:
                line = parser.parser.CurrentLineNumber
                raise _not_decodable(self.path, self.encoding, line, exc) from exc


def open_source(path: Path, mapping: SourceMapping, encoding: str | None = None) -> Source:
    """Settle the file's encoding and check its header against the mapping, before any row."""
    if not path.is_file():
        raise EducloudError(f"{path}: no such file")
    try:
        chosen, reason = detect_encoding(path, mapping, encoding)
        indexes: dict[str, int] = {}
        if mapping.format == "csv":
            indexes = mapping.column_indexes(_csv_header(path, mapping, chosen))
    except OSError as exc:
        raise EducloudError(f"{path}: cannot read: {exc.strerror}") from exc
    return Source(path, mapping, chosen, reason, indexes)
