"""Partners: organisations' cards pinned by hand.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("partner_id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(500)),
        sa.Column("signing_key", sa.String(100), nullable=False),
        sa.Column("age_recipient", sa.String(100), nullable=False),
        sa.Column("audit_verifier_key", sa.String(200), nullable=False),
        sa.Column("card", sa.Text, nullable=False),
        sa.Column("issued", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("revoked_at", TS),
    )


def downgrade() -> None:
    op.drop_table("partners")
