"""Schemas and data quality: the schema a dataset follows, its stored quality report, its quarantine.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holdings") as batch:
        # ``name@version`` of the schema the dataset was mapped to (None: kept as imported).
        batch.add_column(sa.Column("schema", sa.String(140)))
        # The quality report computed on import (JSON), and its overall score (0 to 100) for queries.
        batch.add_column(sa.Column("quality", sa.Text))
        batch.add_column(sa.Column("quality_score", sa.Float))
        # Rows quarantined on import go to a holding of their own that names the holding they came with.
        batch.add_column(sa.Column("quarantine_of", sa.String(40)))


def downgrade() -> None:
    with op.batch_alter_table("holdings") as batch:
        for name in ("schema", "quality", "quality_score", "quarantine_of"):
            batch.drop_column(name)
