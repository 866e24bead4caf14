"""Importing a dataset into a schema: the mapping, the organisation's policy for invalid rows, and the
quality report stored with the holding.

The source is read once, through the mapping, into the encrypted table (see
:func:`civicshare.holdings.tabular.import_table`). Then, on that table:

* ``flag`` (the default) keeps every row; the report flags what is wrong;
* ``quarantine`` moves the invalid rows into a second table (a second holding, "NAME (quarantine)");
* ``reject`` refuses the whole file if any row is invalid, naming the first problems by row and field.

A row is invalid when a value fails its field's checks or a required field is empty
(:func:`civicshare.schemas.quality.invalid_rows_sql`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from civicshare.errors import InvalidInput, UsageError
from civicshare.holdings import duck, encrypted
from civicshare.holdings.problems import Problems
from civicshare.holdings.tabular import Shape
from civicshare.lazyimport import lazy_module
from civicshare.schemas.mapping import Mapping, compile_select, parse_mapping, schema_name
from civicshare.schemas.quality import QualityReport, invalid_rows_sql, profile
from civicshare.schemas.transforms import Context
from civicshare.schemas.validators_sql import sql_normalise

if TYPE_CHECKING:
    import duckdb

    from civicshare.schemas.model import Schema
else:
    duckdb = lazy_module("duckdb")

FLAG, QUARANTINE, REJECT = "flag", "quarantine", "reject"
POLICIES = (FLAG, QUARANTINE, REJECT)
QUARANTINE_SUFFIX = " (quarantine)"


@dataclass(frozen=True)
class ImportPlan:
    """What an import of a dataset does beyond reading the file: its schema, mapping and policy."""

    schema: Schema | None
    mapping: Mapping | None
    policy: str = FLAG

    @property
    def schema_key(self) -> str | None:
        return self.schema.key if self.schema is not None else None

    def shape(self, source_label: str, today: date) -> Shape | None:
        """The select list turning the file's columns into the schema's fields (None: keep them)."""
        schema = self.schema
        if schema is None:
            return None
        ctx = Context(today=today, normalise=sql_normalise)

        def shape(columns: list[str]) -> tuple[str, list[str]]:
            select = compile_select(self.mapping, schema, columns, ctx, source_label=source_label)
            return select, [f.name for f in schema.fields]

        return shape


def plan_import(schemas: Callable[[str], Schema] | None, schema: str | None = None,
                mapping: str | bytes | None = None, mapping_label: str | None = None,
                policy: str = FLAG) -> ImportPlan:
    """Check the options of an import before any row is read. The mapping's own problems are raised
    later, with those the file's columns reveal, so that every problem is listed at once."""
    policy = (policy or FLAG).strip().lower()
    if policy not in POLICIES:
        raise UsageError(f"Unknown policy {policy!r}: choose flag, quarantine or reject.")
    parsed = parse_mapping(mapping, filename=mapping_label or "the mapping") if mapping is not None else None
    if schema is None and parsed is None:
        if policy != FLAG:
            raise UsageError(f"The {policy} policy needs a schema to tell valid rows from invalid ones: give --schema.")
        return ImportPlan(None, None, policy)
    if schemas is None:
        raise UsageError("This node has no schema catalogue, so it cannot import into a schema.")
    return ImportPlan(schemas(schema_name(schema, parsed)), parsed, policy)


@dataclass(frozen=True)
class Checked:
    """The outcome of the policy: the stored table's report, and the quarantined rows' if any."""

    rows: int
    report: QualityReport
    quarantined: int = 0
    quarantine_report: QualityReport | None = None


def _today_sql(today: date) -> str:
    return f"DATE {duck.sql_string(today.isoformat())}"


def _profile(path: Path, key: bytes, columns: list[str], schema: Schema | None, today: date) -> QualityReport:
    with duck.connection() as con:
        table = encrypted.open_table(con, path, key)
        failure: duckdb.Error | None = None
        try:
            return profile(con, table.scan, columns, schema, today=today)
        except duckdb.Error as exc:
            failure = exc
        raise encrypted.read_failure(failure, path, f"checking the quality of {path.name}")


def check_table(plan: ImportPlan, blob: Path, key: bytes, columns: list[str], rows: int, *, today: date,
                label: str, quarantine: tuple[Path, bytes] | None = None) -> Checked:
    """Apply the plan's policy to the imported table at ``blob`` and profile what is kept.

    ``quarantine`` is where (and under which key) invalid rows go for the quarantine policy. Raises
    InvalidInput for the reject policy when a row is invalid; the caller then removes ``blob``.
    """
    schema = plan.schema
    if plan.policy == FLAG or schema is None:
        return Checked(rows, _profile(blob, key, columns, schema, today))
    invalid_sql = invalid_rows_sql(schema, columns, _today_sql(today))
    invalid = _count_invalid(blob, key, invalid_sql)
    if invalid == 0:
        return Checked(rows, _profile(blob, key, columns, schema, today))
    if plan.policy == REJECT:
        raise _rejection(_profile(blob, key, columns, schema, today), label)
    if quarantine is None:
        raise UsageError("The quarantine policy needs somewhere to put the invalid rows.")
    _split(blob, key, quarantine, invalid_sql)
    qblob, qkey = quarantine
    return Checked(rows - invalid, _profile(blob, key, columns, schema, today), invalid,
                   _profile(qblob, qkey, columns, schema, today))


def _count_invalid(blob: Path, key: bytes, invalid_sql: str) -> int:
    with duck.connection() as con:
        table = encrypted.open_table(con, blob, key)
        result = encrypted.run_reading(con, f"SELECT count(*) FROM {table.scan} WHERE {invalid_sql}", table,
                                       "checking the imported rows")
    return int(result[0][0])


def _split(blob: Path, key: bytes, quarantine: tuple[Path, bytes], invalid_sql: str) -> None:
    """Rewrite ``blob`` with the valid rows only and write the invalid rows, in order, to the quarantine."""
    qblob, qkey = quarantine
    valid_partial = blob.with_name(blob.name + ".valid.partial")
    invalid_partial = qblob.with_name(qblob.name + ".partial")
    try:
        with duck.connection() as con:
            table = encrypted.open_table(con, blob, key)
            key_name = duck.add_parquet_key(con, key)
            qkey_name = duck.add_parquet_key(con, qkey)
            for where, dest, name in ((f"NOT ({invalid_sql})", valid_partial, key_name),
                                      (invalid_sql, invalid_partial, qkey_name)):
                sql = encrypted.copy_to_encrypted(f"{table.select()} WHERE {where}", dest, name)
                encrypted.run_reading(con, sql, table, "setting the invalid rows aside")
        for partial in (valid_partial, invalid_partial):
            encrypted.fsync_file(partial)
        os.replace(invalid_partial, qblob)
        os.replace(valid_partial, blob)
        encrypted.fsync_dir(blob.parent)
    except BaseException:
        valid_partial.unlink(missing_ok=True)
        invalid_partial.unlink(missing_ok=True)
        qblob.unlink(missing_ok=True)
        raise


def _rows_words(examples: tuple[int, ...], count: int) -> str:
    shown = ", ".join(str(n) for n in examples)
    more = count - len(examples)
    return f"row {shown}" if count == 1 else f"rows {shown}" + (f" and {more:,} more" if more > 0 else "")


def _rejection(report: QualityReport, label: str) -> InvalidInput:
    """The refusal of the reject policy: each failing field, with its first rows and the check."""
    problems = Problems(label)
    for f in report.fields:
        if f.invalid:
            rule = f" ({f.rule})" if f.rule else ""
            problems.add(f"{_rows_words(f.examples, f.invalid)}: the value fails the check{rule}", field=f.name)
        if f.required and f.missing:
            problems.add(f"{f.missing:,} {'row has' if f.missing == 1 else 'rows have'} no value, and the schema "
                         "requires one", field=f.name)
    first = _rows_words(report.invalid_row_examples, report.invalid_rows)
    return InvalidInput(f"{label} is refused under the reject policy, so nothing was stored: {report.invalid_rows:,} "
                        f"of {report.rows:,} rows {'is' if report.invalid_rows == 1 else 'are'} invalid ({first})",
                        problems=problems.items)
