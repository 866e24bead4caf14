"""One audit record: a versioned, canonical description of an event. Never the personal data itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from civicshare.canonical import canonical_json, check_json
from civicshare.errors import IntegrityError, UsageError

ENTRY_VERSION = 1
OK, REFUSED, FAILED = "ok", "refused", "failed"
OUTCOMES = (OK, REFUSED, FAILED)

# The actions logged today. Later capabilities add theirs (share.*, agreement.*, deletion.*).
ACTIONS = {
    "organisation.create": "an organisation was set up on the node",
    "holding.import": "a dataset or document was imported",
    "holding.view": "a holding's details were looked at",
    "holding.export": "a holding was decrypted and written out",
    "holding.shred": "a holding's data key was destroyed",
    "key.create": "a key was created",
    "key.rotate": "a key-encryption key was replaced and data keys re-wrapped",
    "key.unwrap": "a data key was unwrapped to read a holding",
    "key.export": "a key was exported from the keystore",
    "key.destroy": "a key was destroyed",
    "user.create": "a user was added",
    "token.create": "an API token was issued",
    "login": "a user signed in",
    "login.failed": "a sign-in or API token was refused",
    "login.locked": "an account was locked after repeated failed sign-ins",
    "logout": "a user signed out of the web interface",
    "user.password": "a user's web sign-in password was set or replaced",
    "user.totp": "a user's TOTP second factor was set up or removed",
    "user.unlock": "a locked account was unlocked",
    "audit.read": "the audit log was read (only refusals are logged)",
    "card.issue": "the organisation's card was signed and handed out",
    "partner.add": "a partner's card was pinned, refreshed or its key replaced",
    "directory.create": "this node began operating a federation directory",
    "directory.member": "an organisation's card was added to the operated directory",
    "directory.revoke": "an organisation was revoked in the operated directory",
    "directory.publish": "a new signed edition of the operated directory was published",
    "directory.trust": "a federation directory was trusted, or a newer edition of it accepted",
    "exchange.refused": "a request from another node was refused (unknown, revoked, forged or replayed)",
    "transfer.create": "a transfer was sealed and put in the outbox",
    "transfer.send": "a delivery attempt of a transfer was made",
    "transfer.delivered": "the recipient's signed receipt was verified and the transfer marked delivered",
    "transfer.failed": "a transfer was given up as failed permanently",
    "transfer.receive": "a transfer arrived, was checked and stored as a new holding",
    "transfer.refused": "an arriving transfer or part was refused",
    "witness.checkpoint": "a partner's signed audit checkpoint was received and kept",
    "agreement.create": "a data sharing agreement was added to the register as a draft (or refused)",
}


def _time_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AuditEntry:
    time: datetime
    actor: str
    org_id: str
    action: str
    object: str | None
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    index: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise UsageError(f"audit outcome must be one of {', '.join(OUTCOMES)}")
        if self.action not in ACTIONS and "." not in self.action:
            raise UsageError(f"unknown audit action {self.action!r}")
        check_json(self.details, "the audit details")

    def canonical(self) -> bytes:
        """The exact bytes hashed into the tree: sorted keys, no spaces, UTF-8 (JCS for this shape)."""
        record = {
            "v": ENTRY_VERSION, "time": _time_text(self.time), "actor": self.actor, "org": self.org_id,
            "action": self.action, "object": self.object, "outcome": self.outcome, "details": self.details,
        }
        return canonical_json(record)

    @classmethod
    def from_canonical(cls, data: bytes, index: int) -> AuditEntry:
        try:
            record = json.loads(data.decode("utf-8"))
            if record.get("v") != ENTRY_VERSION:
                raise ValueError(f"version {record.get('v')!r}")
            return cls(
                time=datetime.fromisoformat(record["time"].replace("Z", "+00:00")), actor=record["actor"],
                org_id=record["org"], action=record["action"], object=record["object"],
                outcome=record["outcome"], details=record["details"], index=index,
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            message = f"audit entry {index} is not a readable version {ENTRY_VERSION} record ({exc})"
            raise IntegrityError(message) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "time": _time_text(self.time), "actor": self.actor, "organisation": self.org_id,
            "action": self.action, "object": self.object, "outcome": self.outcome, "details": self.details,
        }
