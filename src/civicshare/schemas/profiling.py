"""The SQL behind the quality report: one aggregate pass over every field at once, one grouped pass per
identifier (repeats and consistency together), and one for exact duplicate rows.

Row numbers come from ``row_number() OVER ()``, which DuckDB computes as it streams, in the stored
order: 1 is the first data row. Values never leave DuckDB; only counts and row numbers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import duckdb

from civicshare.holdings.duck import sql_ident, sql_string
from civicshare.schemas.quality import Consistency, Duplicates, FieldQuality, QualityReport
from civicshare.schemas.validators_sql import sql_valid

if TYPE_CHECKING:
    from civicshare.schemas.model import Schema, SchemaField

VALIDATOR_WORDS = {
    "nhs_number": "an NHS number (10 digits with a correct check digit)",
    "ni_number": "a National Insurance number HMRC issues",
    "postcode": "a UK postcode",
    "uprn": "a UPRN (1 to 12 digits)",
    "date": "a real date (yyyy-mm-dd)",
    "date_of_birth": "a real date of birth (yyyy-mm-dd), not in the future, age under 120",
    "email": "an e-mail address",
    "uk_phone": "a UK phone number",
}
_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "date": "a date (yyyy-mm-dd)",
               "datetime": "a date and time", "boolean": "true or false"}
_ROW = "__civicshare_row"


@dataclass(frozen=True)
class _Field:
    name: str
    required: bool
    in_data: bool
    valid_sql: str | None  # boolean over the column; None when nothing is checked
    rule: str | None


def _present(column_sql: str) -> str:
    # Missing means NULL or '' (as the validators have it); a value of only spaces is present, and a
    # checked field then finds it invalid. Comparing is far cheaper than trimming every value.
    return f"coalesce({column_sql} <> '', false)"


def _type_check(kind: str, col: str) -> str | None:
    value = f"trim({col})"
    if kind == "integer":
        return f"regexp_full_match({value}, '[+-]?[0-9]+')"
    if kind == "number":
        return f"(TRY_CAST({value} AS DOUBLE) IS NOT NULL)"
    if kind == "date":
        return f"(try_strptime({value}, '%Y-%m-%d') IS NOT NULL)"
    if kind == "datetime":
        return f"(TRY_CAST({value} AS TIMESTAMP) IS NOT NULL)"
    if kind == "boolean":
        return f"(lower({value}) IN ('true', 'false', 'yes', 'no', '1', '0'))"
    return None


def _checks(spec: SchemaField, today_sql: str) -> tuple[str | None, str | None]:
    """The field's validity test as SQL, and the same in words."""
    col = sql_ident(spec.name)
    tests: list[str] = []
    words: list[str] = []
    validator = getattr(spec, "validator", None)
    if validator:
        tests.append(sql_valid(validator, col, today_sql))
        words.append(VALIDATOR_WORDS.get(validator, validator.replace("_", " ")))
    else:
        typed = _type_check(str(spec.type), col)
        if typed is not None:
            tests.append(typed)
            words.append(_TYPE_WORDS[str(spec.type)])
    max_length = getattr(spec, "max_length", None)
    if max_length:
        # Bytes bound characters from above: count characters only for the few values with more bytes.
        limit = int(max_length)
        tests.append(f"(CASE WHEN strlen({col}) <= {limit} THEN true ELSE length({col}) <= {limit} END)")
        words.append(f"at most {int(max_length)} characters")
    pattern = getattr(spec, "pattern", None)
    if pattern:
        tests.append(f"regexp_full_match({col}, {sql_string(pattern)})")
        words.append(f"matching the pattern {pattern}")
    if not tests:
        return None, None
    return "(" + " AND ".join(tests) + ")", "must be " + " and ".join(words)


def _fields(schema: Schema | None, columns: Sequence[str], today_sql: str) -> list[_Field]:
    if schema is None:
        return [_Field(c, False, True, None, None) for c in columns]
    found = set(columns)
    named = {f.name for f in schema.fields}
    out = []
    for spec in schema.fields:
        valid, rule = _checks(spec, today_sql)
        out.append(_Field(spec.name, bool(spec.required), spec.name in found, valid, rule))
    out += [_Field(c, False, True, None, None) for c in columns if c not in named]
    return out


def _invalid_flag(f: _Field) -> str:
    """True for a row whose value in this field is present but fails its checks."""
    return f"({_present(sql_ident(f.name))} AND ({f.valid_sql}) IS NOT TRUE)"


def _bad_row_terms(fields: list[_Field], present: dict[str, str] | None = None,
                   invalid: dict[str, str] | None = None) -> list[str]:
    """The terms whose OR marks an invalid row; flags already computed may be named instead."""
    present, invalid = present or {}, invalid or {}
    terms = []
    for f in fields:
        if not f.in_data:
            if f.required:
                return ["true"]
            continue
        if f.valid_sql is not None:
            terms.append(invalid.get(f.name) or _invalid_flag(f))
        if f.required:
            terms.append("NOT " + (present.get(f.name) or _present(sql_ident(f.name))))
    return terms


def invalid_rows_expression(schema: Schema, columns: list[str], today_sql: str = "current_date") -> str:
    terms = _bad_row_terms(_fields(schema, columns, today_sql))
    return "(" + " OR ".join(terms) + ")" if terms else "false"


def _numbered(relation: str, columns: Sequence[str]) -> str:
    cols = ", ".join(sql_ident(c) for c in columns)
    return f"(SELECT row_number() OVER () AS {_ROW}, {cols} FROM {relation})"


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def _int(value: Any) -> int:
    """A count; an aggregate over no rows (an identifier column that is always empty) gives NULL."""
    return int(value or 0)


def _rows(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in value or ())


def _groups(value: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(_rows(g) for g in value or ())


def run_profile(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str], schema: Schema | None, *,
                today: date, examples: int = 5, materialise: bool = False) -> QualityReport:
    k = max(1, int(examples))
    today_sql = f"DATE {sql_string(today.isoformat())}"
    fields = _fields(schema, columns, today_sql)
    data_fields = [f for f in fields if f.in_data]
    # Everything is one statement over one numbered copy of the relation: read once and kept in memory
    # when ``materialise`` (a CSV is parsed once), else read again by each pass (memory stays small).
    keep = "MATERIALIZED" if materialise else "NOT MATERIALIZED"
    ctes = [f"__base AS {keep} {_numbered(relation, columns)}", "__pass1 AS (" + _pass1_sql(fields, k) + ")"]
    parts = ["__pass1"]
    keys, pairs = _group_keys(schema, set(columns))
    for j, (key, deps) in enumerate(keys):
        ctes += _grouped_sql(j, key, deps, k)
        parts += [f"__s{j}", f"__e{j}"]
    ctes.append("__exact AS (" + _exact_sql(columns, k) + ")")
    parts.append("__exact")
    got = _fetch(con, "WITH " + ", ".join(ctes) + " SELECT * FROM " + ", ".join(parts))

    # Pass 1 figures, in the order _pass1_sql asked for them.
    rows, invalid_rows, invalid_examples = _int(got[0]), _int(got[1]), _rows(got[2])
    found: dict[str, FieldQuality] = {}
    at = 3
    for f in data_fields:
        present, invalid = _int(got[at]), 0
        shown: tuple[int, ...] = ()
        at += 1
        if f.valid_sql is not None:
            invalid, shown = _int(got[at]), _rows(got[at + 1])
            at += 2
        found[f.name] = FieldQuality(f.name, f.required, f.rule, rows, present, invalid, shown)
    reported = tuple(found.get(f.name) or FieldQuality(f.name, f.required, f.rule, rows, 0, 0, (), in_data=False)
                     for f in fields)

    duplicates: list[Duplicates] = []
    conflicts: dict[tuple[str, str], Consistency] = {}
    for key, deps in keys:
        width = 4 + 4 * len(deps)
        figures, listed = got[at:at + width], got[at + width]
        at += width + 1
        groups = {g[0]: g[:k] for g in (_rows(r) for r in listed or ()) if g}
        if schema is not None and key in schema.identifiers:
            shown_groups = tuple(groups[n] for n in _rows(figures[3]))
            duplicates.append(Duplicates(key, _int(figures[2]), _int(figures[0]), _int(figures[1]), shown_groups))
        for d, dep in enumerate(deps):
            o = 4 + 4 * d
            shown_groups = tuple(groups[n] for n in _rows(figures[o + 3]))
            conflicts[(key, dep)] = Consistency(key, dep, _int(figures[o]), _int(figures[o + 1]), _int(figures[o + 2]),
                                                shown_groups)
    surplus = _int(got[at + 1])
    exact = Duplicates(None, rows, rows - surplus, _int(got[at]), _groups(got[at + 2]))
    return QualityReport(
        schema.key if schema is not None else None, rows, today, reported, invalid_rows, invalid_examples,
        exact, tuple(duplicates), tuple(conflicts[p] for p in pairs),
    )


def _pass1_sql(fields: list[_Field], k: int) -> str:
    """Pass 1: completeness and validity of every field, and invalid rows, in one aggregate. Each check
    is computed once per row, in the inner projection; the outer one combines the flags. Example row
    numbers come from a top-k aggregate in the same pass: a LIMITed query per field looked cheaper, but
    DuckDB scans about half a million rows before a LIMIT stops it."""
    checks = [_ROW]
    flags = [_ROW]
    present_flags: dict[str, str] = {}
    invalid_flags: dict[str, str] = {}
    aggregates = ["count(*)", "count_if(__bad)", f"min({_ROW}, {k}) FILTER (WHERE __bad)"]
    for i, f in enumerate(f for f in fields if f.in_data):
        col = sql_ident(f.name)
        checks.append(f"{_present(col)} AS __p{i}")
        flags.append(f"__p{i}")
        present_flags[f.name] = f"__p{i}"
        aggregates.append(f"count_if(__p{i})")
        if f.valid_sql is not None:
            checks.append(f"{f.valid_sql} AS __v{i}")
            flags.append(f"(__p{i} AND __v{i} IS NOT TRUE) AS __x{i}")
            invalid_flags[f.name] = f"__x{i}"
            aggregates += [f"count_if(__x{i})", f"min({_ROW}, {k}) FILTER (WHERE __x{i})"]
    bad = _bad_row_terms(fields, present_flags, invalid_flags)
    flags.append(("(" + " OR ".join(bad) + ")" if bad else "false") + " AS __bad")
    return (f"SELECT {', '.join(aggregates)} FROM (SELECT {', '.join(flags)} FROM "
            f"(SELECT {', '.join(checks)} FROM __base))")


def _group_keys(schema: Schema | None, columns: set[str]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """The columns to group by (identifiers, then other consistency keys), each with its dependent
    fields; and the consistency pairs that can be checked."""
    if schema is None:
        return [], []
    pairs = [(a, b) for a, b in schema.consistency if a in columns and b in columns]
    keys = [i for i in schema.identifiers if i in columns]
    keys += [a for a, _ in pairs if a not in keys]
    return [(key, [b for a, b in pairs if a == key]) for key in keys], pairs


def _grouped_sql(j: int, key: str, deps: list[str], k: int) -> list[str]:
    """Pass 2 for one identifier: a GROUP BY that finds repeated values and conflicting dependent
    values (the smallest and largest present dependent value differ), then the example rows of the
    first groups of each kind (``__e``: lists of rows, each starting at its group's first row)."""
    col = sql_ident(key)
    inner = ["count(*) AS __n", f"min({_ROW}) AS __first"]
    outer = ["count(*)", "count_if(__n > 1)", "coalesce(sum(__n), 0)",
             f"coalesce(min(__first, {k}) FILTER (WHERE __n > 1), []) AS __f0"]
    for d, dep in enumerate(deps):
        dep_value = f"nullif({sql_ident(dep)}, '')"
        inner += [f"min({dep_value}) AS __lo{d}", f"max({dep_value}) AS __hi{d}"]
        outer += [f"count_if(__lo{d} IS NOT NULL)", f"count_if(__lo{d} <> __hi{d})",
                  f"coalesce(sum(__n) FILTER (WHERE __lo{d} <> __hi{d}), 0)",
                  f"coalesce(min(__first, {k}) FILTER (WHERE __lo{d} <> __hi{d}), []) AS __f{d + 1}"]
    firsts = "list_concat(" + ", ".join(f"__f{d}" for d in range(len(deps) + 1)) + ", [])"
    return [
        f"__s{j} AS MATERIALIZED (SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM __base "
        f"WHERE {_present(col)} GROUP BY {col}))",
        # The values at those first rows, then every row with one of them.
        f"__e{j} AS (SELECT list(__r) FROM (SELECT list({_ROW} ORDER BY {_ROW}) AS __r FROM __base "
        f"WHERE {col} IN (SELECT {col} FROM __base WHERE {_ROW} IN (SELECT unnest({firsts}) FROM __s{j})) "
        f"GROUP BY {col}))",
    ]


def _exact_sql(columns: list[str], k: int) -> str:
    """Pass 3: rows that are exact copies of another, grouped by a 64-bit hash of the whole row (two
    different rows share one with a chance of about one in 10^7 in a million rows; grouping by every
    column instead takes four times as long). Examples give the first and last row of each set."""
    cols = ", ".join(sql_ident(c) for c in columns)
    return (f"SELECT count_if(__n > 1), coalesce(sum(__n - 1), 0), "
            f"arg_min([__first, __last], __first, {k}) FILTER (WHERE __n > 1) "
            f"FROM (SELECT count(*) AS __n, min({_ROW}) AS __first, max({_ROW}) AS __last "
            f"FROM (SELECT {_ROW}, hash({cols}) AS __h FROM __base) GROUP BY __h)")
