"""The tabular engine: import a CSV, XLSX or JSON Lines file into an encrypted Parquet table, read
it back, export it.

Pure functions: no database, no keystore. The caller supplies a 32-byte AES key per table.
Every value is kept as text exactly as written (leading zeros of NHS and phone numbers survive);
empty cells are NULL; row order is kept. A file with anything wrong is refused with every problem
listed (see :mod:`civicshare.holdings.problems`), and nothing is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from civicshare.errors import CivicshareError, NotFound, UsageError
from civicshare.holdings import duck, encrypted
from civicshare.holdings.encoding import normalise_encoding
from civicshare.holdings.exporting import EXPORT_FORMATS, export_table
from civicshare.holdings.fifo import FifoFeed
from civicshare.holdings.problems import MAX_PROBLEMS, Problems, refuse
from civicshare.holdings.sources import EMPTY_FILE, Prepared, prepare
from civicshare.lazyimport import lazy_module
from civicshare.memfile import writes_in_place

if TYPE_CHECKING:
    import duckdb
else:
    duckdb = lazy_module("duckdb")

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "TableInfo",
    "detect_format",
    "export_table",
    "import_parquet",
    "import_table",
    "plain_parquet",
    "read_rows",
]

IMPORT_FORMATS = ("csv", "xlsx", "jsonl")
MAX_COLUMN_NAME = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_FORMAT_ALIASES = {"csv": "csv", "tsv": "csv", "txt": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "ndjson": "jsonl"}
REJECTS_LIMIT = 10_000


@dataclass(frozen=True)
class TableInfo:
    rows: int
    columns: list[str]
    format: str  # "csv" | "xlsx" | "jsonl" | "parquet"
    encoding: str  # "utf-8", "utf-8-sig", "windows-1252", "latin-1", or "n/a" for xlsx and parquet
    source_size: int  # bytes of the source file
    source_columns: list[str] | None = None  # the file's own columns, where a mapping renamed them


# Given the source's columns, the select list that shapes them (a schema mapping); raises InvalidInput.
Shape = Callable[[list[str]], tuple[str, list[str]]]


def detect_format(path: Path) -> str:
    """``csv``, ``xlsx`` or ``jsonl`` from the file's extension; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    fmt = _EXTENSIONS.get(suffix)
    if fmt is None:
        shown = f"'{suffix}'" if suffix else "no extension"
        raise UsageError(
            f"cannot tell the format of {Path(path).name} ({shown}): name it .csv, .tsv, .txt, "
            ".xlsx, .jsonl or .ndjson, or give the format (csv, xlsx or jsonl)"
        )
    return fmt


def import_format(fmt: str | None, source: Path) -> str:
    if fmt is None:
        return detect_format(source)
    found = _FORMAT_ALIASES.get(str(fmt).strip().lower())
    if found is None:
        raise UsageError(f"unknown import format {fmt!r}: use csv, xlsx or jsonl")
    return found


def _read_csv_sql(path: Path, prepared: Prepared) -> str:
    columns = "{" + ", ".join(f"{duck.sql_string(c)}: 'VARCHAR'" for c in prepared.columns) + "}"
    return (
        f"read_csv({duck.sql_string(str(path))}, columns={columns}, header=true, auto_detect=false, "
        f"delim={duck.sql_string(prepared.delimiter)}, quote='\"', escape='\"', strict_mode=true, "
        f"all_varchar=true, store_rejects=true, rejects_limit={REJECTS_LIMIT})"
    )


_REJECT_MESSAGES = {
    "MISSING COLUMNS": "{where} has {found} but the header has {expected}{missing}",
    "TOO MANY COLUMNS": "{where} has {found} but the header has {expected}",
    "UNQUOTED VALUE": (
        "{where}: the value for {column!r} has an opening quote that is never closed, "
        "or text straight after its closing quote"
    ),
    "INVALID ENCODING": "{where} contains bytes that are not valid UTF-8",
    "LINE SIZE OVER MAXIMUM": "{where} is longer than the 2 MB allowed for one row",
}


def _reject_problems(con: duckdb.DuckDBPyConnection, prepared: Prepared, label: str) -> Problems:
    """Problems from DuckDB's rejects table. Never reads the rejected line's text."""
    problems = Problems(label)
    # DuckDB may reject one line several times (once per missing column): report each line once,
    # by its first error.
    total = con.execute("SELECT count(DISTINCT line), count(*) FROM reject_errors").fetchone()
    count = int(total[0]) if total else 0
    if not total or not total[1]:
        return problems
    rejects = con.execute(
        "SELECT line, arg_min(column_name, coalesce(column_idx, 0)), "
        "arg_min(CAST(error_type AS VARCHAR), coalesce(column_idx, 0)), "
        "arg_min(regexp_extract(error_message, 'Found: ([0-9]+)', 1), coalesce(column_idx, 0)) "
        f"FROM reject_errors GROUP BY line ORDER BY line LIMIT {MAX_PROBLEMS}"
    ).fetchall()
    lines = prepared.line_numbers({int(r[0]) for r in rejects if r[0] is not None})
    unit = "row" if prepared.format == "xlsx" else "line"
    expected = len(prepared.columns)
    for line, column, error_type, found in rejects:
        number = lines.get(int(line), int(line)) if line is not None else None
        where = f"{unit} {number}" if number is not None else f"a {unit}"
        template = _REJECT_MESSAGES.get(error_type, "{where} could not be read as CSV")
        message = template.format(
            where=where,
            found=_fields(found),
            expected=expected,
            column=column,
            missing=f" (nothing for {column!r} onwards)" if column else "",
        )
        problems.add(message, line=number, field=column)
    problems.total = max(count, problems.total)
    problems.total_is_lower_bound = int(total[1]) >= REJECTS_LIMIT
    return problems


def _fields(found: str | None) -> str:
    if not found:
        return "a different number of fields"
    return f"{found} field" if found == "1" else f"{found} fields"


_LINE_IN_ERROR = re.compile(r"\bon line:? ([0-9]+)", re.IGNORECASE)


def _duckdb_failure(exc: duckdb.Error, prepared: Prepared, label: str) -> CivicshareError:
    """A failure DuckDB raised instead of rejecting rows. Only a line number is taken from its text."""
    if duck.is_resource_error(exc):
        return duck.resource_error(exc, f"importing {label}")
    match = _LINE_IN_ERROR.search(str(exc))
    line = None
    if match:
        raw = int(match.group(1))
        line = prepared.line_numbers({raw}).get(raw, raw)
    where = f"line {line}" if line is not None else "the file"
    return refuse(label, f"{where} could not be read as {prepared.format.upper()}", line=line)


def _feed_failure(feed: FifoFeed, prepared: Prepared, label: str) -> CivicshareError | None:
    if isinstance(feed.error, CivicshareError):
        return feed.error
    if feed.error is not None:
        if prepared.format == "xlsx":
            return refuse(label, "the workbook could not be read to the end; it may be damaged")
        return CivicshareError(f"{label} could not be converted for import ({type(feed.error).__name__})")
    if prepared.late_problems:
        return prepared.late_problems.error()
    return None


def _load(prepared: Prepared, partial: Path, key: bytes, label: str, work_dir: Path | None,
          select_list: str = "*") -> int:
    """Write the encrypted table to ``partial`` and return the row count, or raise."""
    with duck.connection() as con:
        key_name = duck.add_parquet_key(con, key)
        feed = FifoFeed(prepared.chunks, work_dir=work_dir) if prepared.chunks is not None else None
        failure: duckdb.Error | None = None
        rows = 0
        with feed if feed is not None else nullcontext(prepared.path) as read_path:
            assert read_path is not None
            sql = encrypted.copy_to_encrypted(f"SELECT {select_list} FROM {_read_csv_sql(read_path, prepared)}",
                                              partial, key_name)
            try:
                result = con.execute(sql).fetchone()
                rows = int(result[0]) if result else 0
            except duckdb.Error as exc:
                failure = exc
        if feed is not None:
            problem = _feed_failure(feed, prepared, label)
            if problem is not None:
                raise problem
            if failure is None and not feed.completed:
                raise CivicshareError(f"{label} could not be imported: the data stream was cut short")
        if failure is not None:
            raise _duckdb_failure(failure, prepared, label)
        rejects = _reject_problems(con, prepared, label)
        rejects.raise_if_any()
    if rows == 0:
        what = "sheet has a header row" if prepared.format == "xlsx" else "file has a header"
        if prepared.format == "jsonl":
            raise refuse(label, "the file has no records")
        raise refuse(label, f"the {what} but no data rows")
    return rows


def import_table(
    source: Path,
    dest: Path,
    key: bytes,
    *,
    fmt: str | None = None,
    encoding: str = "auto",
    label: str | None = None,
    work_dir: Path | None = None,
    shape: Shape | None = None,
) -> TableInfo:
    """Import ``source`` into ``dest`` as an encrypted Parquet table under ``key``.

    ``shape``, given the file's columns, returns the select list and the stored columns (a schema
    mapping, compiled into the one SELECT that reads the file); it is called before any row is read.

    Raises :class:`InvalidInput` listing every problem with the file, :class:`UsageError` for an
    unknown format or encoding, :class:`NotFound` if ``source`` does not exist. On any failure
    nothing is left at ``dest`` (or at ``dest.partial``).
    """
    key = duck.check_key(key)
    source, dest = Path(source), Path(dest)
    fmt = import_format(fmt, source)
    encoding = normalise_encoding(encoding)
    name = label or source.name
    if not source.is_file():
        raise NotFound(f"{name} does not exist or is not a file")
    if not dest.parent.is_dir():
        raise UsageError(f"the folder {dest.parent} for the stored table does not exist")
    size = source.stat().st_size
    if size == 0:
        raise refuse(name, EMPTY_FILE)

    partial = dest.with_name(dest.name + ".partial")
    prepared = prepare(source, fmt, encoding, name)
    columns = list(prepared.columns)
    try:
        select_list = "*"
        if shape is not None:
            select_list, columns = shape(list(prepared.columns))
        rows = _load(prepared, partial, key, name, work_dir, select_list)
        encrypted.fsync_file(partial)
        os.replace(partial, dest)
        encrypted.fsync_dir(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        prepared.close()
    return TableInfo(
        rows=rows, columns=columns, format=fmt, encoding=prepared.encoding, source_size=size,
        source_columns=list(prepared.columns) if shape is not None else None,
    )


def import_parquet(source: Path, dest: Path, key: bytes, *, label: str = "the received Parquet file") -> TableInfo:
    """Import a plain Parquet file (a received dataset) into ``dest`` as an encrypted table under ``key``.

    Every column must be text (VARCHAR) with a sane name, as a civicshare dataset is; anything else is
    refused with InvalidInput listing every problem. Row order is kept. On any failure nothing is left
    at ``dest`` (or at ``dest.partial``).
    """
    key = duck.check_key(key)
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise NotFound(f"{label} does not exist or is not a file")
    if not dest.parent.is_dir():
        raise UsageError(f"the folder {dest.parent} for the stored table does not exist")
    partial = dest.with_name(dest.name + ".partial")
    try:
        with duck.connection() as con:
            scan = f"read_parquet({duck.sql_string(str(source))}, binary_as_string=false)"
            described: list[tuple] | None = None
            try:
                described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            except duckdb.Error:
                pass  # DuckDB's text may quote the file; the refusal below says enough
            if described is None:
                raise refuse(label, "it is not a readable Parquet file")
            columns = [str(row[0]) for row in described]
            problems = Problems(label)
            for name, kind in ((str(r[0]), str(r[1])) for r in described):
                if not name.strip() or len(name) > MAX_COLUMN_NAME or _CONTROL.search(name):
                    problems.add(f"a column name is blank, longer than {MAX_COLUMN_NAME} characters or has "
                                 "control characters", field=name[:MAX_COLUMN_NAME])
                elif kind != "VARCHAR":
                    problems.add(f"the column is {kind}; every column of a dataset is text", field=name)
            if len(set(columns)) != len(columns):
                problems.add("two columns have the same name")
            problems.raise_if_any()
            key_name = duck.add_parquet_key(con, key)
            select = "SELECT " + ", ".join(duck.sql_ident(c) for c in columns) + f" FROM {scan}"
            failure: duckdb.Error | None = None
            try:
                result = con.execute(encrypted.copy_to_encrypted(select, partial, key_name)).fetchone()
            except duckdb.Error as exc:
                failure = exc
            if failure is not None:
                if isinstance(failure, duckdb.OutOfMemoryException):
                    raise duck.resource_error(failure, f"importing {label}")
                raise refuse(label, "it could not be read to the end; it may be damaged")
            rows = int(result[0]) if result else 0
        encrypted.fsync_file(partial)
        os.replace(partial, dest)
        encrypted.fsync_dir(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return TableInfo(rows=rows, columns=columns, format="parquet", encoding="n/a", source_size=source.stat().st_size)


def plain_parquet(src: Path, key: bytes, out: Path, columns: list[str] | None = None) -> tuple[int, list[str]]:
    """Write the encrypted table ``src`` as plain Parquet into the in-memory file ``out`` (for sealing to
    a partner: plaintext never goes to disk). Only ``columns``, in that order, if given. Returns the
    rows written and the columns."""
    key = duck.check_key(key)
    out = Path(out)
    if not writes_in_place(out):
        raise UsageError("plain Parquet for sealing is written only to an in-memory file")
    with duck.connection() as con:
        table = encrypted.open_table(con, Path(src), key)
        chosen = list(table.columns) if columns is None else list(columns)
        unknown = [c for c in chosen if c not in table.columns]
        if unknown:
            raise UsageError("the dataset has no column " + ", ".join(repr(c) for c in unknown)
                             + "; its columns are " + ", ".join(repr(c) for c in table.columns))
        if not chosen or len(set(chosen)) != len(chosen):
            raise UsageError("choose one or more columns, each once")
        select = "SELECT " + ", ".join(duck.sql_ident(c) for c in chosen) + f" FROM {table.scan}"
        sql = f"COPY ({select}) TO {duck.sql_string(str(out))} (FORMAT parquet, USE_TMP_FILE false)"
        result = encrypted.run_reading(con, sql, table, "sealing the dataset")
    return int(result[0][0]), chosen


def read_rows(src: Path, key: bytes, limit: int | None = None) -> tuple[list[str], list[tuple[str | None, ...]]]:
    """The column names and rows (in order) of the encrypted table ``src``; at most ``limit`` rows."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise UsageError("limit must be a whole number of rows, zero or more")
    key = duck.check_key(key)
    with duck.connection() as con:
        table = encrypted.open_table(con, Path(src), key)
        rows = encrypted.run_reading(con, table.select(limit), table, f"reading {table.path.name}")
    return list(table.columns), [tuple(r) for r in rows]

