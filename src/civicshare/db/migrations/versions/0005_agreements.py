"""Agreements: the register of data sharing agreements, one row per version of each.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Each party keeps its own copy; ``body`` is the canonical JSON whose SHA-256 is ``hash``.
    op.create_table(
        "agreements",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("provider", sa.String(63), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),
        sa.Column("review_date", sa.Date, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("org_id", "hash", name="uq_agreements_org_hash"),
    )
    op.create_index("ix_agreements_org_content", "agreements", ["org_id", "content_hash"])
    op.create_index("ix_agreements_org_state", "agreements", ["org_id", "state"])


def downgrade() -> None:
    op.drop_table("agreements")
