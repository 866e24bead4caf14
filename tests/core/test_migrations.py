"""Schema migrations: a database made by an older release upgrades in place, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from civicshare.db import open_database
from civicshare.db.backends import MIGRATIONS
from civicshare.db.tables import agreements, audit_heads, inbound, partners, transfers, trusted_directories

HEAD = "0010"


def test_the_head_the_node_checks_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from civicshare.db import backends

    cfg = Config()
    cfg.set_main_option("script_location", str(backends.MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == backends.HEAD == HEAD


def _upgrade(db, revision: str) -> None:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_upgrade_from_0001_gives_existing_organisations_an_empty_audit_log(tmp_path: Path,
                                                                         db_url: str | None) -> None:
    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, migrate=False)
    _upgrade(db, "0001")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, created_at) VALUES ('old-council', 'Old', :t)"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    db.migrate()  # what every open does
    db.migrate()  # and doing it twice changes nothing
    with db.engine.connect() as conn:
        head = conn.execute(audit_heads.select()).one()
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert (head.org_id, head.size, bytes(head.frontier), head.origin) == (
        "old-council", 0, b"", "civicshare/audit/old-council")
    assert version == HEAD
    from civicshare.audit import AuditLog

    log = AuditLog(db.engine, lambda: datetime(2026, 1, 2, tzinfo=UTC))
    assert log.append("old-council", "operator", "holding.view", "h_1") == 0
    db.dispose()


def test_upgrade_from_0002_adds_an_empty_partner_table(tmp_path: Path, db_url: str | None) -> None:
    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, migrate=False)
    _upgrade(db, "0002")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, created_at) VALUES ('old-council', 'Old', :t)"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.execute(partners.select()).all() == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    db.dispose()


def test_upgrade_from_0003_adds_empty_exchange_tables(tmp_path: Path, db_url: str | None) -> None:
    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, migrate=False)
    _upgrade(db, "0003")
    db.migrate()
    with db.engine.connect() as conn:
        for table in (transfers, inbound, trusted_directories):
            assert conn.execute(table.select()).all() == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    db.dispose()


def test_upgrade_from_0004_adds_an_empty_agreement_register(tmp_path: Path, db_url: str | None) -> None:
    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, migrate=False)
    _upgrade(db, "0004")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, created_at) VALUES ('old-council', 'Old', :t)"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.execute(agreements.select()).all() == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    db.dispose()


def test_upgrade_from_0007_gives_existing_users_web_sign_in_columns(tmp_path: Path, db_url: str | None) -> None:
    from civicshare.db.tables import users, web_sessions

    url = db_url or f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url, migrate=False)
    _upgrade(db, "0007")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, created_at) VALUES ('old-council', 'Old', :t)"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC)})
        conn.execute(text("INSERT INTO users (id, org_id, name, role, created_at) "
                          "VALUES ('u_1', 'old-council', 'sam', 'admin', :t)"), {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    db.migrate()
    with db.engine.connect() as conn:
        row = conn.execute(users.select()).one()
        assert (row.failed_logins, row.locked_until, row.totp_secret, row.totp_last_step) == (0, None, None, None)
        assert conn.execute(web_sessions.select()).all() == []
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    db.dispose()
