"""Sealing keys: a document's data key made by the recipient for one arriving transfer, before it is sealed.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The key itself is in ``keys`` (a data key, wrapped by the KEK, for the holding id reserved here).
    op.create_table(
        "sealing_keys",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("transfer_id", sa.String(40), primary_key=True),
        sa.Column("sender", sa.String(63), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("holding_id", sa.String(40), nullable=False),
        sa.Column("age_recipient", sa.String(200), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sealing_keys")
