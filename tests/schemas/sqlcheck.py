"""Run the SQL forms of validators and normalisers over a list of values in an in-memory DuckDB."""

from __future__ import annotations

from datetime import date

import duckdb

from civicshare.holdings.duck import connect
from civicshare.schemas.validators_sql import sql_normalise, sql_valid

_con: duckdb.DuckDBPyConnection | None = None


def con() -> duckdb.DuckDBPyConnection:
    global _con
    if _con is None:
        _con = connect(threads=1)
    return _con


def valid_in_sql(validator: str, values: list[str | None], today: date) -> list[bool | None]:
    expression = sql_valid(validator, "x", f"DATE '{today.isoformat()}'")
    row = con().execute(f"SELECT list_transform(?::VARCHAR[], lambda x: {expression})", [values]).fetchone()
    assert row is not None
    return list(row[0])


def normalise_in_sql(normaliser: str, values: list[str | None]) -> list[str | None]:
    expression = sql_normalise(normaliser, "x")
    row = con().execute(f"SELECT list_transform(?::VARCHAR[], lambda x: {expression})", [values]).fetchone()
    assert row is not None
    return list(row[0])
