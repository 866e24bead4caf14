"""The metadata tables. Schema changes go through an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

organisations = Table(
    "organisations",
    metadata,
    Column("id", String(63), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("url", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The key register: every key of every organisation, with where it is held.
keys = Table(
    "keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("algorithm", String(60), nullable=False),
    Column("custody", String(20), nullable=False),
    Column("location", String(500), nullable=False),
    Column("public", String(200)),
    Column("wrapped_by", String(40)),
    Column("material", LargeBinary),
    Column("holding_id", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True)),
    Column("state", String(20), nullable=False),
    Column("destroyed_at", DateTime(timezone=True)),
    Index("ix_keys_org_purpose", "org_id", "purpose"),
)

holdings = Table(
    "holdings",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("name", String(300), nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("rows", BigInteger),
    Column("columns", Text),
    Column("format", String(20)),
    Column("encoding", String(30)),
    Column("blob", String(300), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("shredded_at", DateTime(timezone=True)),
    Column("shredded_by", String(200)),
    Column("classification", String(30), nullable=False, server_default="OFFICIAL"),
    Column("schema", String(140)),
    Column("quality", Text),
    Column("quality_score", Float),
    Column("quarantine_of", String(40)),
    # Fixity: hex SHA-256 of a document's contents, measured on import or verified on arrival.
    Column("sha256", String(64)),
    Index("ix_holdings_org", "org_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(30), nullable=False),
    Column("password_hash", String(300)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Web sign-in: failures in a row, the lock-out they caused, and the TOTP secret wrapped by the KEK.
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("totp_secret", Text),
    Column("totp_last_step", BigInteger),
    UniqueConstraint("org_id", "name", name="uq_users_org_name"),
)

# Web sessions: only a hash of the cookie secret is stored, so a copy of the database signs no one in.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("totp_pending", Boolean, nullable=False),
    Index("ix_web_sessions_user", "user_id"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

schema_info = Table(
    "civicshare_info",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)

# The audit log: one append-only RFC 9162 Merkle tree per organisation.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("origin", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    # The roots of the tree's perfect subtrees, so appends need no reads of the tree.
    Column("frontier", LargeBinary, nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("entry", LargeBinary, nullable=False),
    Column("root_after", LargeBinary, nullable=False),
    # Copies of fields inside ``entry``, for queries; verification checks they agree.
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(60), nullable=False),
    Column("object", String(200)),
    Column("outcome", String(20), nullable=False),
    Index("ix_audit_entries_object", "org_id", "object"),
    Index("ix_audit_entries_actor", "org_id", "actor"),
    Index("ix_audit_entries_time", "org_id", "time"),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Partners an organisation trusts: cards pinned by hand (later also found in trusted directories).
partners = Table(
    "partners",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("partner_id", String(63), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("endpoint", String(500)),
    Column("signing_key", String(100), nullable=False),
    Column("age_recipient", String(100), nullable=False),
    Column("audit_verifier_key", String(200), nullable=False),
    # The signed card itself, so anyone can re-verify what was pinned.
    Column("card", Text, nullable=False),
    Column("issued", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# Federation directories an organisation trusts: the operator's key is pinned on first use.
trusted_directories = Table(
    "trusted_directories",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("source", String(500), nullable=False),
    Column("operator_key", String(100), nullable=False),
    Column("serial", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    Column("issued", DateTime(timezone=True), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("added_by", String(200), nullable=False),
)

# Nonces of signed node-to-node requests seen recently, so a replayed request is refused.
seen_nonces = Table(
    "seen_nonces",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("nonce", String(100), primary_key=True),
    Column("sender", String(63), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_seen_nonces_expiry", "expires_at"),
)

# The sender's outbox and ledger: one row per transfer, persisted before anything is sent.
transfers = Table(
    "transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("holding_id", String(40), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("agreement_id", String(100)),
    Column("route", String(20), nullable=False),
    Column("state", String(30), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("payload", String(300)),
    Column("size", BigInteger, nullable=False),
    Column("bytes_sent", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("failed_reason", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("receipt", Text),
    Column("agreement_version", Integer),
    Column("agreement_hash", String(64)),
    Column("deletion_due_at", DateTime(timezone=True)),
    Column("deletion_certificate", Text),
    Column("deletion_verified_at", DateTime(timezone=True)),
    Index("ix_transfers_org_state", "org_id", "state"),
)

# The recipient's side: one row per transfer arriving or arrived. The key makes delivery exactly once.
inbound = Table(
    "inbound",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("transfer_id", String(40), primary_key=True),
    Column("sender", String(63), nullable=False),
    Column("route", String(20), nullable=False),
    Column("state", String(30), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("bytes_received", BigInteger, nullable=False),
    Column("holding_id", String(40)),
    Column("receipt", Text),
    Column("refused_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("agreement_id", String(64)),
    Column("agreement_version", Integer),
    Column("agreement_hash", String(64)),
    Column("retain_until", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("deletion_reason", Text),
    Column("certificate", Text),
)

# Data keys a recipient made for one arriving document before the sender sealed it (the key is in ``keys``).
sealing_keys = Table(
    "sealing_keys",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("transfer_id", String(40), primary_key=True),
    Column("sender", String(63), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("holding_id", String(40), nullable=False),
    Column("age_recipient", String(200), nullable=False),
    Column("document", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Checkpoints of other organisations' audit logs that this organisation has seen and keeps (witnessing).
witnessed_checkpoints = Table(
    "witnessed_checkpoints",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("subject", String(63), primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# The register of data sharing agreements: one row per version; each party keeps its own copy.
# ``body`` is the canonical JSON whose SHA-256 is ``hash``; ``content_hash`` leaves out id and version.
agreements = Table(
    "agreements",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("provider", String(63), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("review_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("proposed_by", String(63)),
    Column("proposed_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(263)),
    Column("revoked_reason", Text),
    Column("revocation", Text),
    UniqueConstraint("org_id", "hash", name="uq_agreements_org_hash"),
    Index("ix_agreements_org_content", "org_id", "content_hash"),
    Index("ix_agreements_org_state", "org_id", "state"),
)

# Each party's signature over an agreement's hash, kept as the signed document the party sent.
agreement_signatures = Table(
    "agreement_signatures",
    metadata,
    Column("org_id", String(63), ForeignKey("organisations.id"), primary_key=True),
    Column("agreement_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("party", String(63), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("signed_by", String(200), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Signed documents waiting to reach a partner (proposals, signatures, revocations, deletion certificates).
notices = Table(
    "notices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(63), ForeignKey("organisations.id"), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("subject", String(100), nullable=False),
    Column("path", String(300), nullable=False),
    Column("document", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_notices_state", "state", "next_attempt_at"),
)
