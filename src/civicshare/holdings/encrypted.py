"""Reading and writing the encrypted Parquet files that hold tables at rest.

Tables are stored with Parquet modular encryption (AES-GCM, footer and every column encrypted
under one 32-byte key), written and read by DuckDB. A wrong key, a damaged file and a tampered
file all fail authentication and raise :class:`IntegrityError`; DuckDB's own message is never shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from civicshare.errors import CivicshareError, IntegrityError, NotFound
from civicshare.holdings import duck
from civicshare.lazyimport import lazy_module

if TYPE_CHECKING:
    import duckdb
else:
    duckdb = lazy_module("duckdb")

_INTEGRITY_MESSAGE = (
    "the stored table {name} could not be decrypted: the key is wrong, or the file is damaged or has been altered"
)


@dataclass(frozen=True)
class Table:
    """An encrypted table opened on a connection: ``scan`` is SQL for use after FROM."""

    path: Path
    scan: str
    columns: list[str]

    def select(self, limit: int | None = None) -> str:
        cols = ", ".join(duck.sql_ident(c) for c in self.columns)
        sql = f"SELECT {cols} FROM {self.scan}"
        return sql if limit is None else f"{sql} LIMIT {int(limit)}"


def integrity_error(path: Path) -> IntegrityError:
    return IntegrityError(_INTEGRITY_MESSAGE.format(name=path.name))


def copy_to_encrypted(select_sql: str, dest: Path, key_name: str) -> str:
    """SQL writing ``select_sql`` to ``dest`` as encrypted Parquet under the registered key."""
    return (
        f"COPY ({select_sql}) TO {duck.sql_string(str(dest))} "
        f"(FORMAT parquet, ENCRYPTION_CONFIG {duck.encryption_option(key_name)})"
    )


def open_table(con: duckdb.DuckDBPyConnection, path: Path, key: bytes) -> Table:
    """Register ``key`` and read the table's (encrypted) footer; IntegrityError if that fails."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"the stored table {path.name} does not exist")
    key_name = duck.add_parquet_key(con, key)
    scan = (
        f"read_parquet({duck.sql_string(str(path))}, "
        f"encryption_config={duck.encryption_option(key_name)}, binary_as_string=true)"
    )
    columns: list[str] | None = None
    failure: BaseException | None = None
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        columns = [str(row[0]) for row in described]
    except duckdb.Error as exc:
        failure = exc
    if failure is not None:
        if isinstance(failure, duckdb.OutOfMemoryException):
            raise duck.resource_error(failure, f"reading {path.name}")
        raise integrity_error(path)
    assert columns is not None
    return Table(path, scan, columns)


def read_failure(exc: BaseException, table_path: Path, action: str) -> CivicshareError:
    """The error to raise when DuckDB fails while reading an encrypted table.

    Running out of memory, or failing to write an output file, is reported as such; any other
    failure while decrypting means the key or the file is wrong.
    """
    if duck.is_resource_error(exc):
        return duck.resource_error(exc, action)
    return integrity_error(table_path)


def run_reading(con: duckdb.DuckDBPyConnection, sql: str, table: Table, action: str) -> list[tuple]:
    """Run ``sql`` (which reads ``table``) and fetch everything, translating failures."""
    failure: BaseException | None = None
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error as exc:
        failure = exc
    raise read_failure(failure, table.path, action)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
