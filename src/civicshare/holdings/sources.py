"""Turning a CSV, XLSX or JSON Lines file into something DuckDB can read as CSV.

A UTF-8 CSV file is read by DuckDB directly. Everything else (CSV in another encoding, a workbook,
JSON Lines) is converted in Python into a UTF-8 CSV stream, which :mod:`civicshare.holdings.fifo`
feeds to DuckDB through a named pipe, so the converted plaintext never touches disk.

:func:`prepare` checks what it can before DuckDB starts (encoding, header, for JSON Lines every
line) and raises :class:`InvalidInput` listing every problem. Problems only found while streaming
(cells beyond the header in a workbook) are collected in :attr:`Prepared.late_problems`.
"""

from __future__ import annotations

import codecs
import json
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from civicshare.holdings import csvtext
from civicshare.holdings.encoding import CHUNK_BYTES, Decoding, resolve
from civicshare.holdings.problems import Problems, refuse

EMPTY_FILE = "the file is empty"


@dataclass
class Prepared:
    """A source ready for DuckDB: either ``path`` (read directly) or ``chunks`` (through a FIFO)."""

    format: str
    encoding: str
    columns: list[str]
    delimiter: str
    path: Path | None
    chunks: Iterable[bytes] | None
    late_problems: Problems
    # Maps DuckDB's line numbers (1 = header) to the line or row numbers a person sees.
    line_numbers: Callable[[Collection[int]], dict[int, int]]
    close: Callable[[], None] = field(default=lambda: None)


def prepare(path: Path, fmt: str, encoding: str, label: str) -> Prepared:
    """Check ``path`` and make it ready for DuckDB; ``fmt`` is ``csv``, ``xlsx`` or ``jsonl``."""
    if fmt == "csv":
        return _prepare_csv(path, encoding, label)
    if fmt == "jsonl":
        return _prepare_jsonl(path, encoding, label)
    return _prepare_xlsx(path, label)


class _RowNumbers:
    """Source line numbers of the rows streamed so far (for the generated CSV)."""

    def __init__(self) -> None:
        self.lines = array("q")

    def __call__(self, records: Collection[int]) -> dict[int, int]:
        # DuckDB line 1 is the header we wrote; data record k is DuckDB line k + 1.
        n = len(self.lines)
        return {r: self.lines[r - 2] for r in records if 2 <= r <= n + 1}


# --- CSV ------------------------------------------------------------------------------------


def _decoded_probe(path: Path, decoding: Decoding) -> str:
    with path.open("rb") as f:
        probe = f.read(csvtext.HEADER_PROBE_BYTES)
    return codecs.getincrementaldecoder(decoding.codec)("strict").decode(probe, False)


def _raw(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def _transcode(path: Path, codec: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(codec)("strict")
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield decoder.decode(chunk).encode("utf-8")
        tail = decoder.decode(b"", True)
        if tail:
            yield tail.encode("utf-8")


def _prepare_csv(path: Path, encoding: str, label: str) -> Prepared:
    decoding = resolve(path, encoding, label)
    if decoding.blank:
        raise refuse(label, EMPTY_FILE)
    problems = Problems(label)
    header = csvtext.parse_header(_decoded_probe(path, decoding), problems)
    if header is None:
        raise problems.error()

    def line_numbers(records: Collection[int]) -> dict[int, int]:
        with path.open("rb") as f:
            return csvtext.record_lines(f, records, header.delimiter)

    chunks: Iterable[bytes] | None = None
    if not decoding.is_utf8:
        chunks = _transcode(path, decoding.codec)
    if len(header.columns) == 1:
        chunks = csvtext.without_trailing_line_breaks(chunks if chunks is not None else _raw(path))
    return Prepared(
        format="csv",
        encoding=decoding.encoding,
        columns=header.columns,
        delimiter=header.delimiter,
        path=path if chunks is None else None,
        chunks=chunks,
        late_problems=Problems(label),
        line_numbers=line_numbers,
    )


# --- JSON Lines -----------------------------------------------------------------------------


class _Number(str):
    """A JSON number, kept as the exact text it was written as."""


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _loads(text: str) -> Any:
    return json.loads(
        text,
        object_pairs_hook=_object_pairs,
        parse_int=_Number,
        parse_float=_Number,
        parse_constant=_no_constants,
    )


def _compact_json(value: Any) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return (
            "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _compact_json(v) for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_compact_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def json_cell(value: Any) -> str | None:
    """A JSON value as the text stored in a cell: strings as-is, numbers as written, null as NULL."""
    if value is None:
        return None
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, str):
        return value or None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _compact_json(value)


_JSON_KINDS = {list: "a list", str: "a string", _Number: "a number", bool: "true or false", type(None): "null"}


def _json_lines(path: Path, decoding: Decoding) -> Iterator[tuple[int, str]]:
    """(line number, text) for every non-blank line."""
    codec = "utf-8" if decoding.is_utf8 else decoding.codec
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.decode(codec)
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            if text.strip():
                yield number, text


def _prepare_jsonl(path: Path, encoding: str, label: str) -> Prepared:
    decoding = resolve(path, encoding, label)
    if decoding.blank:
        raise refuse(label, EMPTY_FILE)
    problems = Problems(label)
    columns: list[str] = []
    folded: dict[str, tuple[str, int]] = {}
    for number, text in _json_lines(path, decoding):
        try:
            obj = _loads(text)
        except _DuplicateKey as exc:
            problems.add(f"line {number} has the key {exc.key!r} more than once", line=number, field=exc.key)
            continue
        except ValueError as exc:
            where = f" ({exc.msg}, at character {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            problems.add(f"line {number} is not valid JSON{where}", line=number)
            continue
        if not isinstance(obj, dict):
            kind = _JSON_KINDS.get(type(obj), "not an object")
            problems.add(f"line {number} is {kind}, not a JSON object ({{...}})", line=number)
            continue
        if "\\u" in text:
            try:
                _compact_json(obj).encode("utf-8")
            except UnicodeEncodeError:
                problems.add(f"line {number} has a \\u escape that is not a valid character", line=number)
                continue
        for key in obj:
            known = folded.get(key.strip().casefold())
            if known is not None:
                if known[0] != key:
                    problems.add(
                        f"line {number} has the key {key!r}, which clashes with {known[0]!r} "
                        f"(first on line {known[1]}); keys must be unique ignoring case and spaces",
                        line=number,
                        field=key,
                    )
                continue
            if not key.strip():
                problems.add(f"line {number} has an empty key", line=number)
                continue
            folded[key.strip().casefold()] = (key, number)
            columns.append(key)
    problems.raise_if_any()
    if not columns:
        raise refuse(label, "no line has any fields: the file has no columns")

    numbers = _RowNumbers()

    def rows() -> Iterator[list[str | None]]:
        for number, text in _json_lines(path, decoding):
            obj = _loads(text)
            numbers.lines.append(number)
            yield [json_cell(obj.get(c)) for c in columns]

    return Prepared(
        format="jsonl",
        encoding=decoding.encoding,
        columns=columns,
        delimiter=",",
        path=None,
        chunks=csvtext.csv_chunks(columns, rows()),
        late_problems=Problems(label),
        line_numbers=numbers,
    )


# --- XLSX -----------------------------------------------------------------------------------


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(index))


def xlsx_cell(value: Any) -> str | None:
    """A spreadsheet value as text: whole numbers without ``.0``, dates and times in ISO 8601."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _prepare_xlsx(path: Path, label: str) -> Prepared:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises assorted errors (zip, XML, key, value) for damaged files
        raise refuse(label, "the file is not a valid Excel workbook (.xlsx)") from None
    values: Any = None

    def close() -> None:
        if values is not None:
            values.close()  # the row iterator holds the sheet's member of the zip open
        workbook.close()

    try:
        if not workbook.worksheets:
            raise refuse(label, "the workbook has no worksheets")
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # trust the cells, not the (sometimes wrong) declared size
        values = sheet.iter_rows(values_only=True)
        first = next(values, None)
        header = [xlsx_cell(v) for v in (first or ())]
        while header and header[-1] is None:
            header.pop()
        if not header:
            raise refuse(label, "row 1 of the first sheet is empty: it must be the header naming the columns", line=1)
        problems = Problems(label)
        columns = csvtext.check_column_names(header, problems, line=1)
        problems.raise_if_any()
    except BaseException:
        close()
        raise

    width = len(columns)
    late = Problems(label)
    numbers = _RowNumbers()

    def rows() -> Iterator[list[str | None]]:
        try:
            for number, row in enumerate(values, start=2):
                cells = [xlsx_cell(v) for v in row]
                if all(c is None for c in cells):
                    continue  # blank rows are not records
                if len(cells) > width:
                    extra = [i for i, c in enumerate(cells[width:], start=width + 1) if c is not None]
                    if extra:
                        late.add(
                            f"row {number} has a value in column {_column_letter(extra[0])}, "
                            f"but the header names only {width} columns",
                            line=number,
                        )
                    cells = cells[:width]
                elif len(cells) < width:
                    cells.extend([None] * (width - len(cells)))
                numbers.lines.append(number)
                yield cells
        finally:
            close()

    return Prepared(
        format="xlsx",
        encoding="n/a",
        columns=columns,
        delimiter=",",
        path=None,
        chunks=csvtext.csv_chunks(columns, rows()),
        late_problems=late,
        line_numbers=numbers,
        close=close,
    )
