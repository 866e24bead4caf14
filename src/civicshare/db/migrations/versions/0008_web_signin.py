"""Web sign-in: sessions, lock-out after failed sign-ins, and an optional TOTP second factor.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", TS))
        # The TOTP secret wrapped by the organisation's KEK ("<kek id>.<base64>"), never in plaintext.
        batch.add_column(sa.Column("totp_secret", sa.Text))
        # The last 30-second step a code was accepted for, so each code signs in once.
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger))
    # The primary key is the SHA-256 of the cookie secret; the secret itself is never stored.
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(63), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("user_id", sa.String(40), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("totp_pending", sa.Boolean, nullable=False),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    with op.batch_alter_table("users") as batch:
        for name in ("failed_logins", "locked_until", "totp_secret", "totp_last_step"):
            batch.drop_column(name)
