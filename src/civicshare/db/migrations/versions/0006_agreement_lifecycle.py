"""Agreement lifecycle and enforcement: signatures, revocations, the notice outbox, retention and deletion.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Who proposed an agreement (None: drafted here), and its revocation, once any party revokes it.
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("proposed_by", sa.String(63)))
        batch.add_column(sa.Column("proposed_at", TS))
        batch.add_column(sa.Column("revoked_at", TS))
        batch.add_column(sa.Column("revoked_by", sa.String(263)))
        batch.add_column(sa.Column("revoked_reason", sa.Text))
        batch.add_column(sa.Column("revocation", sa.Text))

    # Each party's signature over an agreement's hash: the signed document, as the party sent it.
    op.create_table(
        "agreement_signatures",
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("agreement_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("party", sa.String(63), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signed_by", sa.String(200), nullable=False),
        sa.Column("signed_at", TS, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )

    # Signed documents waiting to reach a partner (proposals, signatures, revocations, deletion
    # certificates): written in the same step as the change they announce, sent by ``serve``.
    op.create_table(
        "notices",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("recipient", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
    )
    op.create_index("ix_notices_state", "notices", ["state", "next_attempt_at"])

    # A holding's security classification (OFFICIAL unless marked OFFICIAL-SENSITIVE).
    with op.batch_alter_table("holdings") as batch:
        batch.add_column(sa.Column("classification", sa.String(30), nullable=False, server_default="OFFICIAL"))

    # The sender's ledger: which version of the agreement a transfer went under, and its deletion.
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("agreement_version", sa.Integer))
        batch.add_column(sa.Column("agreement_hash", sa.String(64)))
        batch.add_column(sa.Column("deletion_due_at", TS))
        batch.add_column(sa.Column("deletion_certificate", sa.Text))
        batch.add_column(sa.Column("deletion_verified_at", TS))

    # The recipient's side: the agreement a transfer arrived under, how long it may be kept, its deletion.
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(sa.Column("agreement_id", sa.String(64)))
        batch.add_column(sa.Column("agreement_version", sa.Integer))
        batch.add_column(sa.Column("agreement_hash", sa.String(64)))
        batch.add_column(sa.Column("retain_until", TS))
        batch.add_column(sa.Column("deleted_at", TS))
        batch.add_column(sa.Column("deletion_reason", sa.Text))
        batch.add_column(sa.Column("certificate", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("inbound") as batch:
        for name in ("agreement_id", "agreement_version", "agreement_hash", "retain_until", "deleted_at",
                     "deletion_reason", "certificate"):
            batch.drop_column(name)
    with op.batch_alter_table("transfers") as batch:
        for name in ("agreement_version", "agreement_hash", "deletion_due_at", "deletion_certificate",
                     "deletion_verified_at"):
            batch.drop_column(name)
    with op.batch_alter_table("holdings") as batch:
        batch.drop_column("classification")
    op.drop_index("ix_notices_state", "notices")
    op.drop_table("notices")
    op.drop_table("agreement_signatures")
    with op.batch_alter_table("agreements") as batch:
        for name in ("proposed_by", "proposed_at", "revoked_at", "revoked_by", "revoked_reason", "revocation"):
            batch.drop_column(name)
