"""Exporting an encrypted table as CSV, JSON Lines, plain Parquet or XLSX.

The output is written to ``out.partial`` in the same folder and moved into place only when complete;
on any failure the partial file is removed. CSV cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) get a leading ``'``. In XLSX such
values are stored as explicit text cells, so they are never formulas; XLSX is XML, which stores every
line break (CR LF, or a lone CR) as LF, as Excel itself does.

Beside an export to a file goes ``FILE.schema.json``, a Frictionless Table Schema of the holding (see
``table_schema``): the fields of its schema where it has one, otherwise every column as text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from civicshare.crypto.atomicfile import atomic_write
from civicshare.errors import CivicshareError, Conflict, NotFound, UsageError
from civicshare.holdings import duck, encrypted
from civicshare.holdings.problems import Problems
from civicshare.lazyimport import lazy_module
from civicshare.memfile import memory_file, writes_in_place

if TYPE_CHECKING:
    import duckdb

    from civicshare.schemas.catalog import SchemaCatalog
    from civicshare.schemas.model import Schema
else:
    duckdb = lazy_module("duckdb")

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
DESCRIPTOR_SUFFIX = ".schema.json"


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


# The schema descriptor beside an export --------------------------------------------------------


class Described(Protocol):
    """What ``describe_holding`` reads of a holding (civicshare.holdings.store.Holding)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def columns(self) -> list[str] | None: ...
    @property
    def schema(self) -> str | None: ...


H = TypeVar("H", bound=Described)


def descriptor_path(out: Path) -> Path:
    """Where the Table Schema of an export to ``out`` goes: ``out`` + ``.schema.json``."""
    out = Path(out)
    return out.with_name(out.name + DESCRIPTOR_SUFFIX)


def table_schema(columns: Sequence[str], schema: Schema | None = None,
                 schema_key: str | None = None) -> dict[str, Any]:
    """A Frictionless Table Schema of a table with ``columns``, in their order.

    A column the ``schema`` defines is described as the schema does (type, constraints, validator);
    any other column is a string field. What applies to columns the table lacks (a minimised share
    holds only the agreed ones) is left out: their fields, a primary key or consistency rule naming
    them. Empty cells are missing values, as the export writes NULL.
    """
    if schema is None:
        return {"fields": [{"name": c, "type": "string"} for c in columns], "missingValues": [""]}
    published = schema.to_table_schema()
    by_name = {f["name"]: f for f in published.get("fields", [])}
    present = set(columns)
    descriptor = {k: v for k, v in published.items() if k not in ("fields", "primaryKey")}
    descriptor["fields"] = [by_name.get(c, {"name": c, "type": "string"}) for c in columns]
    descriptor.setdefault("missingValues", [""])
    key = published.get("primaryKey")
    key_fields = [key] if isinstance(key, str) else list(key or [])
    if key_fields and set(key_fields) <= present:
        descriptor["primaryKey"] = key
    if "civicshare:identifiers" in descriptor:
        descriptor["civicshare:identifiers"] = [f for f in descriptor["civicshare:identifiers"] if f in present]
    if "civicshare:consistency" in descriptor:
        descriptor["civicshare:consistency"] = [pair for pair in descriptor["civicshare:consistency"]
                                                if set(pair) <= present]
    descriptor["civicshare:schema"] = schema_key or schema.key
    return descriptor


def describe_holding(catalog: SchemaCatalog, holding: Described) -> dict[str, Any]:
    """The Table Schema of a dataset holding: of its schema (``name@version``) if it has one.

    A schema no longer in the catalog leaves the columns described as text, and says so.
    """
    if holding.kind != "dataset" or holding.columns is None:
        raise UsageError(f"Holding {holding.id} is a document; only a dataset has a table schema.")
    key = holding.schema
    if not key:
        return table_schema(holding.columns)
    try:
        schema = catalog.get(key.split("@", 1)[0])
    except NotFound:
        descriptor = table_schema(holding.columns)
        descriptor["description"] = (f"{holding.name} was imported with the schema {key}, which this node no "
                                     "longer has; every column is described as text.")
        return descriptor
    return table_schema(holding.columns, schema, key)


def descriptor_bytes(descriptor: dict[str, Any]) -> bytes:
    return (json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def export_described(export: Callable[[], tuple[H, int | None]], out: Path,
                     describe: Callable[[H], dict[str, Any]], *, overwrite: bool = False,
                     peek: Callable[[], str] | None = None) -> tuple[H, int | None]:
    """Run ``export`` to ``out``, then write a dataset's Table Schema beside it (``descriptor_path``).

    The descriptor is written atomically like the export. If it cannot be written (it exists and
    ``overwrite`` is false: Conflict), the export is removed too, so there is never data without its
    description. ``peek`` (the holding's kind, without logging) lets an existing descriptor be refused
    before any data is decrypted. An in-memory or device output gets no descriptor: the API serves it
    at its own route.
    """
    out = Path(out)
    side = None if writes_in_place(out) else descriptor_path(out)
    if side is not None and not overwrite and (side.exists() or side.is_symlink()) and peek is not None:
        try:
            kind = peek()
        except CivicshareError:
            kind = None  # the export itself refuses, and logs why
        if kind == "dataset":
            raise Conflict(f"{side.name} already exists; choose another name for the export or move it away.")
    holding, rows = export()
    if side is None or holding.kind != "dataset":
        return holding, rows
    try:
        atomic_write(side, descriptor_bytes(describe(holding)), overwrite=overwrite)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return holding, rows
