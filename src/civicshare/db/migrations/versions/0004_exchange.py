"""Exchange: trusted directories, seen request nonces, the outbox ledger, inbound transfers, witnesses.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Federation directories an organisation trusts: the operator's key is pinned on first use.
    op.create_table(
        "trusted_directories",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("operator_key", sa.String(100), nullable=False),
        sa.Column("serial", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("issued", TS, nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("added_by", sa.String(200), nullable=False),
    )

    # Nonces of signed node-to-node requests seen recently, so a replayed request is refused.
    op.create_table(
        "seen_nonces",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("nonce", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(63), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_seen_nonces_expiry", "seen_nonces", ["expires_at"])

    # The sender's outbox and ledger: one row per transfer, persisted before anything is sent.
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("holding_id", sa.String(40), nullable=False),
        sa.Column("recipient", sa.String(63), nullable=False),
        sa.Column("agreement_id", sa.String(100)),
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("payload", sa.String(300)),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("bytes_sent", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("failed_reason", sa.Text),
        sa.Column("next_attempt_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
        sa.Column("receipt", sa.Text),
    )
    op.create_index("ix_transfers_org_state", "transfers", ["org_id", "state"])

    # The recipient's side: one row per transfer arriving or arrived. The key makes delivery exactly once.
    op.create_table(
        "inbound",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("transfer_id", sa.String(40), primary_key=True),
        sa.Column("sender", sa.String(63), nullable=False),
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("bytes_received", sa.BigInteger, nullable=False),
        sa.Column("holding_id", sa.String(40)),
        sa.Column("receipt", sa.Text),
        sa.Column("refused_reason", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
    )

    # Checkpoints of other organisations' audit logs that this organisation has seen and keeps (witnessing).
    op.create_table(
        "witnessed_checkpoints",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("subject", sa.String(63), primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("witnessed_checkpoints", "inbound", "transfers", "seen_nonces", "trusted_directories"):
        op.drop_table(table)
