"""Exporting an encrypted table as CSV, JSON Lines, plain Parquet or XLSX.

The output is written to ``out.partial`` in the same folder and moved into place only when complete;
on any failure the partial file is removed. CSV cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a leading ``'``. In XLSX such
values are stored as explicit text cells, so they are never formulas; XLSX is XML, which stores every
line break (CR LF, or a lone CR) as LF, as Excel itself does.
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from pathlib import Path

import duckdb

from civicshare.errors import Conflict, UsageError
from civicshare.holdings import duck, encrypted
from civicshare.holdings.problems import Problems
from civicshare.memfile import memory_file, writes_in_place

EXPORT_FORMATS = ("csv", "jsonl", "parquet", "xlsx")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_576  # including the header row
XLSX_MAX_COLUMNS = 16_384
XLSX_MAX_CELL_CHARS = 32_767
FETCH_ROWS = 10_000

_COPY_OPTIONS = {
    "csv": "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"'",
    "jsonl": "FORMAT json",
    "parquet": "FORMAT parquet",
}
# Characters an XLSX (XML 1.0) cell cannot hold; the same set openpyxl refuses.
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")
_XLSX_ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


def neutralise(text: str) -> str:
    """``text`` made safe to open in a spreadsheet: a leading ``'`` if it could start a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _export_format(fmt: str) -> str:
    wanted = str(fmt).strip().lower()
    if wanted == "ndjson":
        wanted = "jsonl"
    if wanted not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use csv, jsonl, parquet or xlsx")
    return wanted


def _csv_select(table: encrypted.Table) -> str:
    prefixes = ", ".join(duck.sql_string(p) if p.isprintable() else f"chr({ord(p)})" for p in FORMULA_PREFIXES)
    parts = []
    for column in table.columns:
        ident = duck.sql_ident(column)
        parts.append(
            f"CASE WHEN left({ident}, 1) IN ({prefixes}) THEN '''' || {ident} ELSE {ident} END "
            f"AS {duck.sql_ident(neutralise(column))}"
        )
    return f"SELECT {', '.join(parts)} FROM {table.scan}"


def _xlsx_value(sheet: object, value: str | None, problems: Problems, row: int, column: str) -> object:
    from openpyxl.cell import WriteOnlyCell

    if value is None:
        return None
    if len(value) > XLSX_MAX_CELL_CHARS:
        problems.add(
            f"row {row}: the value for {column!r} is longer than the {XLSX_MAX_CELL_CHARS:,} characters "
            "an Excel cell can hold; export as CSV, JSON Lines or Parquet instead",
            line=row,
            field=column,
        )
        return None
    if _XLSX_ILLEGAL.search(value):
        problems.add(
            f"row {row}: the value for {column!r} contains control characters that an Excel cell "
            "cannot hold; export as CSV, JSON Lines or Parquet instead",
            line=row,
            field=column,
        )
        return None
    if value.startswith("=") or value in _XLSX_ERROR_CODES:
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # text, never a formula or an error value
        return cell
    return value


def _write_xlsx(con: duckdb.DuckDBPyConnection, table: encrypted.Table, partial: Path, label: str) -> int:

    action = f"exporting to {label}"
    counted = encrypted.run_reading(con, f"SELECT count(*) FROM {table.scan}", table, action)
    rows = int(counted[0][0])
    if rows + 1 > XLSX_MAX_ROWS:
        raise UsageError(
            f"the table has {rows:,} rows but an Excel sheet holds at most {XLSX_MAX_ROWS - 1:,} "
            "below its header; export as CSV, JSON Lines or Parquet instead"
        )
    if len(table.columns) > XLSX_MAX_COLUMNS:
        raise UsageError(
            f"the table has {len(table.columns):,} columns but an Excel sheet holds at most "
            f"{XLSX_MAX_COLUMNS:,}; export as CSV, JSON Lines or Parquet instead"
        )

    with ExitStack() as stack:
        # openpyxl stages the sheet's XML in a temporary file. Keep it beside the output (where the user
        # asked for plaintext), or in memory when the output is in memory; never in the temp folder.
        if writes_in_place(partial):
            staging = str(stack.enter_context(memory_file("sheet"))[1])
        else:
            staging = str(partial.with_name(partial.name + ".sheet"))
        return _write_sheets(con, table, partial, label, staging)


def _write_sheets(con: duckdb.DuckDBPyConnection, table: encrypted.Table, partial: Path, label: str,
                  staging: str) -> int:
    from openpyxl import Workbook
    from openpyxl.worksheet import _writer as sheet_writer

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")
    sheet._writer = sheet_writer.WorksheetWriter(sheet, out=staging)
    sheet_writer.ALL_TEMP_FILES.append(staging)
    if writes_in_place(Path(staging)):
        # An in-memory staging file cannot be unlinked; it goes when its descriptor is closed.
        def forget() -> None:
            if staging in sheet_writer.ALL_TEMP_FILES:
                sheet_writer.ALL_TEMP_FILES.remove(staging)

        sheet._writer.cleanup = forget
    sheet._writer.write_top()
    problems = Problems(label)
    written = 0
    try:
        sheet.append([_xlsx_value(sheet, c, problems, 1, c) for c in table.columns])
        failure: BaseException | None = None
        try:
            cursor = con.execute(table.select())
            while batch := cursor.fetchmany(FETCH_ROWS):
                for values in batch:
                    written += 1
                    sheet.append(
                        [
                            _xlsx_value(sheet, v, problems, written + 1, c)
                            for v, c in zip(values, table.columns, strict=True)
                        ]
                    )
        except duckdb.Error as exc:
            failure = exc
        if failure is not None:
            raise encrypted.read_failure(failure, table.path, f"exporting to {label}")
        problems.raise_if_any("cannot be written as XLSX")
        workbook.save(partial)
    finally:
        if not sheet.closed:
            try:
                sheet.close()  # finish openpyxl's row writer so it does not fail later when collected
            except Exception:  # noqa: S110 - best effort on a path that is already failing
                pass
        if os.path.exists(staging) and not writes_in_place(Path(staging)):
            os.remove(staging)
        if staging in sheet_writer.ALL_TEMP_FILES:
            sheet_writer.ALL_TEMP_FILES.remove(staging)
    return written


def export_table(src: Path, key: bytes, out: Path, fmt: str, *, overwrite: bool = False) -> int:
    """Write the encrypted table ``src`` to ``out`` as ``fmt``; returns the number of rows written.

    Raises :class:`Conflict` if ``out`` exists and ``overwrite`` is false, :class:`IntegrityError`
    for a wrong key or a damaged or altered table, :class:`UsageError` for an unknown format.
    """
    fmt = _export_format(fmt)
    key = duck.check_key(key)
    src, out = Path(src), Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give a file name to export to")
    if out.exists() and not overwrite:
        raise Conflict(f"{out.name} already exists; choose another name or allow overwriting it")
    if not out.parent.is_dir():
        raise UsageError(f"the folder {out.parent} does not exist")
    if src.exists() and out.exists() and out.samefile(src):
        raise UsageError("a table cannot be exported over its own stored file")

    in_place = writes_in_place(out)
    partial = out if in_place else out.with_name(out.name + ".partial")
    try:
        with duck.connection() as con:
            table = encrypted.open_table(con, src, key)
            if fmt == "xlsx":
                rows = _write_xlsx(con, table, partial, out.name)
            else:
                select = _csv_select(table) if fmt == "csv" else table.select()
                # We stage through our own partial file; DuckDB's extra temporary file would break in-place writes.
                options = f"{_COPY_OPTIONS[fmt]}, USE_TMP_FILE false"
                sql = f"COPY ({select}) TO {duck.sql_string(str(partial))} ({options})"
                result = encrypted.run_reading(con, sql, table, f"exporting to {out.name}")
                rows = int(result[0][0])
        if not in_place:
            os.replace(partial, out)
    except BaseException:
        if not in_place:
            partial.unlink(missing_ok=True)
        raise
    return rows
