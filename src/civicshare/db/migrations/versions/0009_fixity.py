"""Fixity: the SHA-256 of a document's contents, recorded when it is imported or received.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holdings") as batch:
        # Hex SHA-256 of the plaintext; empty for datasets and for documents imported before 0009.
        batch.add_column(sa.Column("sha256", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("holdings") as batch:
        batch.drop_column("sha256")
