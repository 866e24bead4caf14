"""Organisations, key register, holdings, users and API tokens.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.String(500)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("algorithm", sa.String(60), nullable=False),
        sa.Column("custody", sa.String(20), nullable=False),
        sa.Column("location", sa.String(500), nullable=False),
        sa.Column("public", sa.String(200)),
        sa.Column("wrapped_by", sa.String(40)),
        sa.Column("material", sa.LargeBinary),
        sa.Column("holding_id", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("rotated_at", TS),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("destroyed_at", TS),
    )
    op.create_index("ix_keys_org_purpose", "keys", ["org_id", "purpose"])
    op.create_table(
        "holdings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("media_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger),
        sa.Column("columns", sa.Text),
        sa.Column("format", sa.String(20)),
        sa.Column("encoding", sa.String(30)),
        sa.Column("blob", sa.String(300), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("shredded_at", TS),
        sa.Column("shredded_by", sa.String(200)),
    )
    op.create_index("ix_holdings_org", "holdings", ["org_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("password_hash", sa.String(300)),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_users_org_name"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "civicshare_info",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for name in ("civicshare_info", "tokens", "users", "holdings", "keys", "organisations"):
        op.drop_table(name)
