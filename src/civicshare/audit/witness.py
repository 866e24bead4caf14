"""Witnessing: keeping the signed audit checkpoints partners hand us, and checking ours against theirs.

An operator holds their organisation's signing key, so they could rewrite the audit log and re-sign
every checkpoint of it. What they cannot change is the checkpoints partners already saw and kept.
Each organisation therefore keeps every checkpoint of a partner's log it is given (in receipts and in
the periodic exchange), refuses a second, different root for the same size (a fork: two histories
shown to different people), and hands a partner back the checkpoints it holds of that partner's log,
so the partner can prove its own log consistent with all of them (``audit verify --witnesses``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.audit.log import AuditLog, b64, origin_for
from civicshare.audit.note import Checkpoint, open_note, parse_verifier_key
from civicshare.clock import Clock, iso, utc
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, IntegrityError, InvalidInput, UsageError

MAX_NOTE_BYTES = 16 * 1024
# How many checkpoints of one log a partner hands back at most; the newest are the most useful.
MAX_RETURNED = 1000


@dataclass(frozen=True)
class Witnessed:
    org_id: str
    subject: str
    size: int
    root_hash: bytes
    note: str
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"organisation": self.org_id, "subject": self.subject, "tree_size": self.size,
                "root_hash": b64(self.root_hash), "received": iso(self.received_at), "note": self.note}


def read_checkpoint(note: str, subject: str, verifier_key: str) -> Checkpoint:
    """The checkpoint in ``note`` after checking it is ``subject``'s log, signed with its verifier key.

    IntegrityError when the signature does not verify or the note is for another log; InvalidInput
    when the note is malformed.
    """
    if not isinstance(note, str) or len(note.encode("utf-8", "replace")) > MAX_NOTE_BYTES:
        raise InvalidInput(f"A checkpoint note is text of at most {MAX_NOTE_BYTES:,} bytes.")
    name, public_key = parse_verifier_key(verifier_key)
    origin = origin_for(subject)
    if name != origin:
        raise IntegrityError(f"The verifier key pinned for {subject} is for log {name!r}, not {origin!r}.")
    try:
        checkpoint = Checkpoint.parse(open_note(note, origin, public_key))
    except UsageError as exc:
        raise InvalidInput(f"This is not a checkpoint note: {exc.message}") from None
    if checkpoint.origin != origin:
        raise IntegrityError(f"This checkpoint is of log {checkpoint.origin!r}, not {origin!r}.")
    return checkpoint


class WitnessBook:
    """The checkpoints of partners' logs each organisation keeps. Queries are scoped to one organisation."""

    def __init__(self, engine: Engine, audit: AuditLog, clock: Clock) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def keep(self, org_id: str, subject: str, note: str, verifier_key: str, *, via: str) -> Witnessed:
        """Verify ``subject``'s checkpoint and keep it; a different root for a size already kept raises.

        ``via`` says how it arrived (``receipt`` or ``exchange``), for the audit entry. Keeping the same
        checkpoint again is harmless and logs nothing.
        """
        try:
            checkpoint = read_checkpoint(note, subject, verifier_key)
        except CivicshareError as exc:
            self.audit.append(org_id, "witness", "witness.checkpoint", subject, "refused",
                              {"code": exc.code, "reason": exc.message, "via": via})
            raise
        existing = self._get(org_id, subject, checkpoint.size)
        if existing is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(t.witnessed_checkpoints).values(
                        org_id=org_id, subject=subject, size=checkpoint.size, root_hash=checkpoint.root_hash,
                        note=note, received_at=self.clock()))
            except SAIntegrityError:
                pass  # Kept by a concurrent request; compared below like any earlier copy.
            else:
                self.audit.append(org_id, "witness", "witness.checkpoint", subject, details={
                    "tree_size": checkpoint.size, "root_hash": b64(checkpoint.root_hash), "via": via})
            existing = self._get(org_id, subject, checkpoint.size)
        assert existing is not None
        if not hmac.compare_digest(existing.root_hash, checkpoint.root_hash):
            reason = (f"{subject} signed two different audit logs of {checkpoint.size} entries: the one kept on "
                      f"{iso(existing.received_at)} and this one. Its history was rewritten.")
            self.audit.append(org_id, "witness", "witness.checkpoint", subject, "refused",
                              {"code": "fork", "reason": reason, "tree_size": checkpoint.size, "via": via})
            raise IntegrityError(reason)
        return existing

    def held(self, org_id: str, subject: str, *, limit: int = MAX_RETURNED) -> list[Witnessed]:
        """The checkpoints of ``subject``'s log this organisation keeps, newest (largest) first."""
        w = t.witnessed_checkpoints
        with self.engine.connect() as conn:
            rows = conn.execute(select(w).where(w.c.org_id == org_id, w.c.subject == subject)
                                .order_by(w.c.size.desc()).limit(limit))
            return [_witnessed(r) for r in rows]

    def latest(self, org_id: str) -> list[Witnessed]:
        """For every subject, the largest checkpoint kept (the witness overview)."""
        w = t.witnessed_checkpoints
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(w).where(w.c.org_id == org_id).order_by(w.c.subject, w.c.size.desc())))
        seen: dict[str, Witnessed] = {}
        for row in rows:
            seen.setdefault(row.subject, _witnessed(row))
        return list(seen.values())

    def _get(self, org_id: str, subject: str, size: int) -> Witnessed | None:
        w = t.witnessed_checkpoints
        with self.engine.connect() as conn:
            row = conn.execute(select(w).where(w.c.org_id == org_id, w.c.subject == subject,
                                               w.c.size == size)).first()
        return None if row is None else _witnessed(row)


def _witnessed(row: Any) -> Witnessed:
    return Witnessed(row.org_id, row.subject, row.size, bytes(row.root_hash), row.note, utc(row.received_at))
