"""Verifying an audit log: recompute the tree from the stored entries and check every checkpoint.

Each stored entry carries the root of the tree just after it was appended, so an entry edited in
place (even with its hashes recomputed) is named exactly. A log rewritten from the start with every
hash recomputed is caught by the signed checkpoints: those stored here, and any a partner or the
operator saved elsewhere and passes in.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import and_, select

from civicshare.audit.entry import AuditEntry
from civicshare.audit.log import AuditLog, b64, origin_for
from civicshare.audit.merkle import Frontier, leaf_hash, root_at
from civicshare.audit.note import Checkpoint, open_note
from civicshare.db import tables as t
from civicshare.errors import AuditTampered, CivicshareError, InvalidInput

BATCH = 5000


@dataclass
class VerifyReport:
    org_id: str
    size: int
    root_hash: bytes
    checkpoints: list[int] = field(default_factory=list)
    # With --witnesses: per partner, how many of its checkpoints of this log were checked, or why not.
    witnesses: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"organisation": self.org_id, "verified": True, "tree_size": self.size,
                                "root_hash": b64(self.root_hash), "checkpoints_checked": self.checkpoints}
        if self.witnesses is not None:
            data["witnesses"] = self.witnesses
        return data


def _checkpoint(note: str, origin: str, public_key: bytes, where: str) -> Checkpoint:
    try:
        body = open_note(note, origin, public_key)
        parsed = Checkpoint.parse(body)
    except CivicshareError as exc:
        raise AuditTampered(f"{where} is not a valid signed checkpoint of this log: {exc.message}", index=0) from None
    if parsed.origin != origin:
        raise AuditTampered(f"{where} is for log {parsed.origin!r}, not {origin!r}", index=0)
    return parsed


def verify_log(log: AuditLog, org_id: str, public_key: bytes, extra_notes: list[str] | None = None) -> VerifyReport:
    """Check the organisation's whole log; raise AuditTampered naming the first index that fails.

    The node may append while this runs. The log is verified as it stood when its head was read: the
    stored checkpoints are read first (each was made from an earlier head, so none may cover more than
    it), then the head, then the entries below it. Entries stored beyond the head count as tampering
    only if they are beyond the head as it is at the end (an append stores its entry and moves the head
    in one transaction).
    """
    checkpoints = log.checkpoints(org_id)
    origin, head_size, head_frontier = log.head(org_id)
    if origin != origin_for(org_id):
        raise AuditTampered(f"the audit log's origin {origin!r} is not the one of {org_id}", index=0)
    expected: dict[int, tuple[bytes, str]] = {}
    for stored in checkpoints:
        parsed = _checkpoint(stored.note, origin, public_key, f"the stored checkpoint at size {stored.size}")
        if parsed.size != stored.size or not hmac.compare_digest(parsed.root_hash, stored.root_hash):
            raise AuditTampered(f"the stored checkpoint at size {stored.size} disagrees with its signed note",
                                index=min(parsed.size, stored.size))
        expected[parsed.size] = (parsed.root_hash, f"the checkpoint signed at {stored.created_at:%Y-%m-%d %H:%M}")
    for n, note in enumerate(extra_notes or []):
        try:
            parsed = Checkpoint.parse(open_note(note, origin, public_key))
        except CivicshareError as exc:
            # A bad file says nothing about the log; it is refused as input, not reported as tampering.
            raise InvalidInput(f"Saved checkpoint {n + 1} is not a signed checkpoint of {org_id}'s audit log: "
                               f"{exc.message}") from None
        expected[parsed.size] = (parsed.root_hash, f"the saved checkpoint of size {parsed.size}")

    frontier = Frontier()
    verified_upto = 0  # the size of the last checkpoint that matched
    if 0 in expected and not hmac.compare_digest(expected[0][0], frontier.root()):
        raise AuditTampered("the checkpoint of the empty log does not match", index=0)
    for index, data, stored_leaf, root_after, columns in _rows(log, org_id, below=head_size):
        if index != frontier.size:
            raise AuditTampered(f"entry {frontier.size} is missing from the audit log", index=frontier.size)
        leaf = leaf_hash(data)
        if stored_leaf is None or not hmac.compare_digest(leaf, stored_leaf):
            raise AuditTampered(f"entry {index} does not match its stored hash: it was changed", index=index)
        entry = AuditEntry.from_canonical(data, index)
        if columns != (entry.time, entry.actor, entry.action, entry.object, entry.outcome):
            raise AuditTampered(f"entry {index}'s searchable columns disagree with the entry itself", index=index)
        frontier.append(leaf)
        root = frontier.root()
        if not hmac.compare_digest(root, root_after):
            raise AuditTampered(f"the tree after entry {index} does not match the one recorded when it was "
                                "appended: the log was changed at this entry", index=index)
        if frontier.size in expected:
            want, what = expected[frontier.size]
            if not hmac.compare_digest(want, root):
                raise AuditTampered(
                    f"{what} does not match the log: an entry from index {verified_upto} to {frontier.size - 1} "
                    "was changed and the hashes recomputed", index=verified_upto)
            verified_upto = frontier.size
    size = frontier.size
    if size < head_size:
        raise AuditTampered(f"the log's head says {head_size} entries but {size} are stored: it was truncated",
                            index=size)
    last = log.last_index(org_id)  # before the head is read again: see the docstring
    _origin, head_now, _frontier = log.head(org_id)
    if last is not None and last >= head_now:
        raise AuditTampered(f"the log's head says {head_now} entries but {last + 1} are stored: the head was "
                            "moved back or entries were added outside the log", index=head_now)
    beyond = [s for s in expected if s > size]
    if beyond:
        raise AuditTampered(f"a checkpoint covers {max(beyond)} entries but only {size} are stored: "
                            "the log was truncated", index=size)
    if not hmac.compare_digest(head_frontier.root(), frontier.root()):
        raise AuditTampered("the log's head does not match its entries", index=verified_upto)
    if size and not hmac.compare_digest(root_at(size, log._lookup(org_id)), frontier.root()):
        raise AuditTampered("the stored tree nodes used for proofs do not match the entries", index=verified_upto)
    return VerifyReport(org_id, size, frontier.root(), sorted(expected))


def _rows(log: AuditLog, org_id: str, *, below: int,
          ) -> Iterator[tuple[int, bytes, bytes | None, bytes, tuple[Any, ...]]]:
    """Entries before index ``below`` in index order with their stored leaf hash, read in batches to
    keep memory flat."""
    e, n = t.audit_entries, t.audit_nodes
    query = (
        select(e.c.idx, e.c.entry, n.c.hash, e.c.root_after, e.c.time, e.c.actor, e.c.action, e.c.object,
               e.c.outcome)
        .select_from(e.outerjoin(n, and_(n.c.org_id == e.c.org_id, n.c.level == 0, n.c.idx == e.c.idx)))
        .where(e.c.org_id == org_id, e.c.idx < below).order_by(e.c.idx)
    )
    with log.engine.connect() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(query)
        for row in result:
            # SQLite hands times back without a zone; they were stored in UTC.
            when = row.time if row.time.tzinfo else row.time.replace(tzinfo=UTC)
            yield (row.idx, bytes(row.entry), None if row.hash is None else bytes(row.hash), bytes(row.root_after),
                   (when, row.actor, row.action, row.object, row.outcome))
