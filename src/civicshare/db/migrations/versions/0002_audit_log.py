"""The audit log: heads, entries, tree nodes and signed checkpoints.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    org = sa.ForeignKey("organisations.id")
    op.create_table(
        "audit_heads",
        sa.Column("org_id", sa.String(63), org, primary_key=True),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audit_entries",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("root_after", sa.LargeBinary, nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("object", sa.String(200)),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    op.create_index("ix_audit_entries_object", "audit_entries", ["org_id", "object"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["org_id", "actor"])
    op.create_index("ix_audit_entries_time", "audit_entries", ["org_id", "time"])
    op.create_table(
        "audit_nodes",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    # Organisations created before the audit log start with an empty one. Bound parameters keep the
    # empty frontier a binary value on every backend (a '' literal is text in SQLite).
    bind = op.get_bind()
    heads = sa.table("audit_heads", sa.column("org_id", sa.String), sa.column("origin", sa.String),
                     sa.column("size", sa.BigInteger), sa.column("frontier", sa.LargeBinary))
    orgs = bind.execute(sa.text("SELECT id FROM organisations")).scalars().all()
    if orgs:
        bind.execute(heads.insert(), [{"org_id": o, "origin": f"civicshare/audit/{o}", "size": 0,
                                       "frontier": b""} for o in orgs])


def downgrade() -> None:
    for name in ("audit_checkpoints", "audit_nodes", "audit_entries", "audit_heads"):
        op.drop_table(name)
