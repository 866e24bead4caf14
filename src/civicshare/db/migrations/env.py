"""Alembic environment: always run programmatically with a connection from the backend."""

from alembic import context

from civicshare.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
