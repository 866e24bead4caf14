"""Fixtures shared by every test: storage backends and ready-made node homes.

Every storage test runs on SQLite and on PostgreSQL. Outside CI a missing PostgreSQL skips with a
visible reason; with CI=true it fails instead, so CI can never pass on SQLite alone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from civicshare.access import Actor, Role
from civicshare.crypto import KdfParams
from civicshare.node import Node

PG_URL = os.environ.get("CIVICSHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSPHRASE = "correct horse battery staple"
BACKENDS = ["sqlite", "postgresql"]


# Folders of long tests (real node processes, a browser): run first, so that with xdist the workers do not
# end the run waiting on the last few long ones while the others sit idle.
LONG_FIRST = ("tests/web/", "tests/faults/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort keeps the usual order within each group, so every xdist worker collects the same list.
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {PG_URL} is not reachable ({reason}); PostgreSQL storage tests cannot run."
    if os.environ.get("CI") == "true":
        pytest.fail(message + " Under CI=true this is a failure, not a skip.")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[object]:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        _postgres_unavailable(str(exc.orig).strip().splitlines()[0])
    yield engine
    engine.dispose()


def make_pg_schema(pg_engine: object) -> tuple[str, str]:
    """A fresh schema and a database URL whose search_path points at it."""
    schema = "t_" + secrets.token_hex(6)
    with pg_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_pg_schema(pg_engine: object, schema: str) -> None:
    with pg_engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None means the default SQLite database inside the home."""
    if request.param == "sqlite":
        yield None
        return
    engine = request.getfixturevalue("pg_engine")
    schema, url = make_pg_schema(engine)
    yield url
    drop_pg_schema(engine, schema)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def node(home: Path, db_url: str | None) -> Iterator[Node]:
    """A node hosting north-wold and south-fen, on each backend in turn."""
    n = Node.init(home, "north-wold", "North Wold District Council", db_url=db_url,
                  passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests())
    n.add_organisation("south-fen", "South Fen Borough Council")
    yield n
    n.close()


def actor(org: str, role: Role = Role.RECORDS_MANAGER, name: str = "tester") -> Actor:
    return Actor(org, f"{name}-{role.value}", role)


def write_csv(path: Path, text_: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text_.encode(encoding))
    return path
