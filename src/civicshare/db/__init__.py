"""Storage: tables, migrations and one class per database backend."""

from civicshare.db.backends import Database, PostgresDatabase, SQLiteDatabase, open_database

__all__ = ["Database", "PostgresDatabase", "SQLiteDatabase", "open_database"]
