"""DuckDB connections for the tabular engine.

Every operation gets a fresh in-memory connection that:

* never downloads or auto-loads an extension;
* loads OpenSSL (needed to write encrypted Parquet) from the httpfs extension shipped in the
  ``duckdb-extension-httpfs`` wheel;
* never spills to disk (``temp_directory=''``), so plaintext cannot leak into temporary files;
* has a bounded memory limit and two threads.

DuckDB error texts may quote SQL (which can hold a key) or lines of the input (personal data), so
callers never show them; :func:`add_parquet_key` in particular drops the original exception.
"""

from __future__ import annotations

import base64
import importlib.resources
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from civicshare.errors import CivicshareError, ConfigError, UsageError
from civicshare.lazyimport import lazy_module

if TYPE_CHECKING:
    import duckdb
else:
    duckdb = lazy_module("duckdb")

DUCKDB_VERSION = "1.5.5"
DEFAULT_MEMORY_LIMIT = "512MB"
DEFAULT_THREADS = 2
KEY_BYTES = 32

_MEMORY_LIMIT_RE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)$", re.IGNORECASE)


@cache
def httpfs_extension_path() -> Path:
    """Where the httpfs extension shipped in the ``duckdb-extension-httpfs`` wheel lives."""
    if duckdb.__version__ != DUCKDB_VERSION:
        raise ConfigError(
            f"civicshare needs DuckDB {DUCKDB_VERSION} but {duckdb.__version__} is installed; "
            "reinstall civicshare's dependencies"
        )
    try:
        import duckdb_extension_httpfs
    except ImportError:
        raise ConfigError(
            "the duckdb-extension-httpfs package is missing; reinstall civicshare's dependencies"
        ) from None
    path = (
        Path(str(importlib.resources.files(duckdb_extension_httpfs)))
        / "extensions"
        / f"v{DUCKDB_VERSION}"
        / "httpfs.duckdb_extension"
    )
    if not path.is_file():
        raise ConfigError(f"the DuckDB httpfs extension was not found at {path}")
    return path


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def connect(*, memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection, configured as described in the module docstring."""
    if not _MEMORY_LIMIT_RE.match(memory_limit):
        raise UsageError(f"memory limit {memory_limit!r} is not a size such as '512MB'")
    if threads < 1:
        raise UsageError("the number of DuckDB threads must be at least 1")
    extension = httpfs_extension_path()
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": False,
        },
    )
    try:
        con.execute(f"LOAD {sql_string(str(extension))}")
        con.execute("SET temp_directory = ''")
        con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error as exc:
        con.close()
        raise ConfigError(f"DuckDB could not be set up: {type(exc).__name__}") from None
    return con


@contextmanager
def connection(
    *, memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`connect` as a context manager that always closes the connection."""
    con = connect(memory_limit=memory_limit, threads=threads)
    try:
        yield con
    finally:
        con.close()


def check_key(key: object) -> bytes:
    """Refuse anything but a 32-byte AES key, without ever echoing it."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise UsageError(f"the table key must be {KEY_BYTES} bytes (an AES-256 key)")
    return bytes(key)


def add_parquet_key(con: duckdb.DuckDBPyConnection, key: bytes) -> str:
    """Register ``key`` with the connection under a random name and return the name."""
    key = check_key(key)
    name = "k" + secrets.token_hex(12)
    encoded = base64.b64encode(key).decode("ascii")
    failed = False
    try:
        con.execute(f"PRAGMA add_parquet_key({sql_string(name)}, {sql_string(encoded)})")
    except duckdb.Error:
        failed = True  # raised below, outside the handler, so the DuckDB text (with the key) is dropped
    del encoded
    if failed:
        raise CivicshareError("the table key could not be registered with DuckDB")
    return name


def encryption_option(key_name: str) -> str:
    """The ``encryption_config`` struct naming a registered key."""
    return "{footer_key: " + sql_string(key_name) + "}"


def is_resource_error(exc: BaseException) -> bool:
    """True for failures of the machine (memory, disk) rather than of the data."""
    return isinstance(exc, duckdb.OutOfMemoryException | duckdb.IOException)


def resource_error(exc: BaseException, action: str) -> CivicshareError:
    """A plain-words error for a memory or disk failure, without DuckDB's text."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return CivicshareError(f"{action} ran out of memory (DuckDB's limit is {DEFAULT_MEMORY_LIMIT})")
    return CivicshareError(f"{action} failed: a file could not be read or written (is the disk full?)")
