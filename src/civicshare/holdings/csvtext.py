"""CSV text helpers: the header line, the delimiter, line numbers, and writing CSV in chunks.

DuckDB parses the body of a CSV file; the header is parsed here with Python's csv module so that
duplicate and empty column names are refused (DuckDB would silently rename ``a, a`` to ``a, a_1``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from civicshare.holdings.problems import Problems

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
HEADER_PROBE_BYTES = 1 << 20
CHUNK_CHARS = 1 << 20

# The CSV dialect we write for DuckDB: CRLF line ends, so that a lone CR inside a value is quoted.
_WRITE_DIALECT = {"delimiter": ",", "quotechar": '"', "doublequote": True, "lineterminator": "\r\n"}


@dataclass(frozen=True)
class Header:
    columns: list[str]
    delimiter: str

    @property
    def delimiter_name(self) -> str:
        return _DELIMITER_NAMES[self.delimiter]


def first_line(text: str) -> str:
    """Text up to the first line break."""
    for i, ch in enumerate(text):
        if ch in "\r\n":
            return text[:i]
    return text


def _count_outside_quotes(line: str, ch: str) -> int:
    count = 0
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            count += 1
    return count


def detect_delimiter(line: str) -> str:
    """The most frequent of ``,`` ``;`` tab ``|`` in the header line (comma when there is none)."""
    counts = {d: _count_outside_quotes(line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else ","


def check_column_names(names: Sequence[str | None], problems: Problems, *, line: int = 1) -> list[str]:
    """Trimmed column names; adds a problem for every empty or repeated name."""
    columns: list[str] = []
    seen: dict[str, str] = {}
    reported: set[str] = set()
    for position, raw in enumerate(names, start=1):
        name = (raw or "").strip()
        columns.append(name)
        if not name:
            problems.add(f"the header (line {line}) has no name for column {position}", line=line)
            continue
        folded = name.casefold()
        if folded in seen:
            if folded not in reported:
                reported.add(folded)
                same = "" if seen[folded] == name else f" (as {seen[folded]!r} and {name!r})"
                problems.add(
                    f"the header (line {line}) names the column {name!r} more than once{same}; "
                    "column names must be unique, ignoring case",
                    line=line,
                    field=name,
                )
            continue
        seen[folded] = name
    return columns


def parse_header(probe: str, problems: Problems) -> Header | None:
    """Parse the header from the decoded start of a CSV file (byte-order mark already removed).

    Returns None, with problems added, when the header cannot be used.
    """
    line = first_line(probe)
    if not line.strip():
        problems.add("line 1 is blank: the first line must be the header naming the columns", line=1)
        return None
    delimiter = detect_delimiter(line)
    reader = csv.reader(io.StringIO(probe, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    try:
        names = next(reader)
    except (csv.Error, StopIteration):
        problems.add(
            "the header (line 1) has a quoted column name whose closing quote is missing, "
            "or text after a closing quote",
            line=1,
        )
        return None
    columns = check_column_names(names, problems, line=1)
    if problems:
        return None
    return Header(columns, delimiter)


# --- line numbers ---------------------------------------------------------------------------

_FIELD_START, _UNQUOTED, _QUOTED, _AFTER_QUOTE = range(4)
_QUOTE = ord('"')


def _ends_inside_quotes(line: bytes, inside: bool, delimiter: int) -> bool:
    state = _QUOTED if inside else _FIELD_START
    for c in line:
        if state == _QUOTED:
            if c == _QUOTE:
                state = _AFTER_QUOTE
        elif state == _FIELD_START:
            state = _QUOTED if c == _QUOTE else (_FIELD_START if c == delimiter else _UNQUOTED)
        elif state == _UNQUOTED:
            if c == delimiter:
                state = _FIELD_START
        else:  # just after a quote inside a quoted value
            state = _QUOTED if c == _QUOTE else (_FIELD_START if c == delimiter else _UNQUOTED)
    return state == _QUOTED


def record_lines(stream: BinaryIO, records: Collection[int], delimiter: str) -> dict[int, int]:
    """Map DuckDB's line numbers to physical line numbers.

    DuckDB counts a value spanning several lines (a quoted line break) as one line; people count
    what their editor shows. ``records`` are DuckDB's numbers (1 = header); the result maps each to
    the physical line on which that record starts. Only quote characters and line feeds are looked
    at, so an ASCII-compatible encoding (UTF-8, Windows-1252, Latin-1) can be scanned as bytes.
    """
    wanted = set(records)
    found: dict[int, int] = {}
    if not wanted:
        return found
    last = max(wanted)
    delim = ord(delimiter)
    record = 0
    inside = False
    for physical, line in enumerate(stream, start=1):
        if not inside:
            record += 1
            if record in wanted:
                found[record] = physical
            if record >= last:
                break
        if b'"' in line:
            inside = _ends_inside_quotes(line, inside, delim)
    return found


def without_trailing_line_breaks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stream with the blank lines at its very end dropped (one line break is kept).

    DuckDB skips blank lines in a file of several columns, but in a one-column file it reads each as
    an empty value; a file that merely ends with a few blank lines must not gain empty rows.
    """
    pending = b""
    for chunk in chunks:
        data = pending + chunk
        body = data.rstrip(b"\r\n")
        pending = data[len(body) :]
        if body:
            yield body
    if pending:
        yield b"\r\n" if pending.startswith(b"\r\n") else pending[:1]


# --- writing CSV for DuckDB -----------------------------------------------------------------


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> Iterator[bytes]:
    """UTF-8 CSV (header first) in chunks of about a megabyte; None is written as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, **_WRITE_DIALECT)  # type: ignore[arg-type]
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
