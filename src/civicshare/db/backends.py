"""The storage seam: one class per database backend, the rest of the code sees only ``Database``.

SQLite (WAL) is the embedded default; PostgreSQL is the scale-out store. The backends differ only in
how they connect and in how they scrub destroyed key material from the files underneath.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from civicshare.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Alembic (slow to import) is loaded only when a database is behind it; a test
# checks this is Alembic's own head.
HEAD = "0010"


class Database:
    """A metadata database with migrations applied."""

    backend = "abstract"

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run on every start."""
        if self._at_head():
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise ConfigError(f"The database at {self.safe_url} cannot be reached: {exc.orig}") from None

    def _at_head(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        except (OperationalError, ProgrammingError):
            return False  # No version table yet (a new database), or it cannot be read: let Alembic tell.

    def scrub(self) -> None:
        """Make deleted rows unrecoverable from the database files (after a shred or key destruction)."""

    @property
    def safe_url(self) -> str:
        """The URL without any password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


class SQLiteDatabase(Database):
    backend = "sqlite"

    @classmethod
    def connect(cls, url: str) -> SQLiteDatabase:
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted content is overwritten with zeros, so a destroyed wrapped key leaves no trace.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return cls(url, engine)

    def scrub(self) -> None:
        # The WAL still holds the page as it was before the delete; fold it in and truncate it.
        with self.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


class PostgresDatabase(Database):
    backend = "postgresql"

    @classmethod
    def connect(cls, url: str) -> PostgresDatabase:
        return cls(url, create_engine(url, pool_pre_ping=True))

    def scrub(self) -> None:
        # MVCC keeps the old row version until VACUUM reclaims it.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM keys"))


def open_database(url: str, *, migrate: bool = True) -> Database:
    if url.startswith("sqlite"):
        db: Database = SQLiteDatabase.connect(url)
    elif url.startswith("postgresql"):
        db = PostgresDatabase.connect(url)
    else:
        raise ConfigError(f"Unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://...")
    if migrate:
        db.migrate()
    return db
