"""Retention: received holdings are destroyed when they may no longer be kept, and the provider is told.

At the recipient, a holding that arrived under an agreement may be kept until its retention ends
(``inbound.retain_until``: days after receipt) and only while that agreement is active. The sweep
(``node.retention.sweep()``, run by ``serve`` every ``--retention-every`` seconds) finds every
holding past either limit and, without anyone acting:

1. crypto-shreds it (the holding store destroys its data key; repeating that is harmless);
2. in ONE transaction, records the deletion in the inbox row and queues a signed deletion
   certificate to the provider (the notice outbox sends it).

Shredding comes first, so a certificate never claims a deletion that has not happened. A crash
between the two leaves a shredded holding with no recorded deletion: the next sweep finds it again
(the reason still holds) and records it then, with the moment the key was destroyed. The guarded
UPDATE makes a second sweep, or two at once, record and queue at most one certificate.

At the provider, a verified receipt sets when the deletion is due (``deletion_due``); a certificate
arriving at ``POST /orgs/{org}/transfers/{tid}/deletion`` is verified and kept (``accept_certificate``);
the sweep brings the due date forward when the agreement stops early, and flags (audit
``retention.overdue``, once) a deletion whose certificate is more than a day late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import or_, select, update

from civicshare.access import Actor, Role
from civicshare.agreements.register import EXPIRED, REVOKED, SUPERSEDED
from civicshare.audit.entry import REFUSED
from civicshare.canonical import canonical_json
from civicshare.clock import iso, utc
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, NotFound, Shredded
from civicshare.exchange.deletion import (
    DELETION_CERTIFICATE,
    DeletionCertificate,
    check_certificate,
    make_certificate,
    verify_certificate,
)
from civicshare.exchange.inbox import check_transfer_id
from civicshare.exchange.transfers import DELETION_GRACE, DELIVERED, VERSION, InboundTransfer, Transfer

if TYPE_CHECKING:
    from civicshare.agreements.model import Agreement
    from civicshare.agreements.register import AgreementRecord
    from civicshare.exchange.manifest import AgreementRef
    from civicshare.node import Node

log = structlog.get_logger("civicshare.retention")

# The system actor: no person acts when retention ends.
RETENTION_ACTOR = "node:retention"
# The first words of every reason, so a script (and a person) can tell them apart.
RETENTION_ENDED = "retention ended"
AGREEMENT_REVOKED = "agreement revoked"
AGREEMENT_EXPIRED = "agreement expired"
AGREEMENT_SUPERSEDED = "agreement superseded"
SHREDDED_EARLY = "shredded at the recipient"
_STOPPED = {REVOKED: AGREEMENT_REVOKED, EXPIRED: AGREEMENT_EXPIRED, SUPERSEDED: AGREEMENT_SUPERSEDED}
MAX_REASON = 500


def deletion_path(transfer_id: str) -> str:
    """The provider's route for a transfer's deletion certificate, after its endpoint."""
    return f"/transfers/{transfer_id}/deletion"


def agreement_end(agreement: Agreement) -> datetime:
    """The moment an agreement has ended: the start (UTC) of the day after its end date."""
    return datetime.combine(agreement.end_date + timedelta(days=1), time(0), tzinfo=UTC)


def retain_until(node: Node, org_id: str, agreement: AgreementRef, received: datetime) -> datetime | None:
    """Until when a holding received at ``received`` under ``agreement`` may be kept: the retention in
    days after receipt, or None when it is kept until the agreement ends (the sweep sees that end)."""
    record = node.agreement_register.by_hash(org_id, agreement.sha256)
    days = None if record is None else record.agreement.retention_days
    return None if days is None else received + timedelta(days=days)


def deletion_due(node: Node, org_id: str, agreement: AgreementRef, delivered: datetime) -> datetime | None:
    """When the recipient must have deleted a holding delivered at ``delivered``: retention days after
    delivery, and at the latest when the agreement ends. None if the agreement is not held here."""
    record = node.agreement_register.by_hash(org_id, agreement.sha256)
    if record is None:
        return None
    end = agreement_end(record.agreement)
    days = record.agreement.retention_days
    return end if days is None else min(delivered + timedelta(days=days), end)


def _system(org_id: str) -> Actor:
    return Actor(org_id, RETENTION_ACTOR, Role.ADMIN)


def _reason(headline: str, detail: str) -> str:
    text = f"{headline}: {detail}".replace("\n", " ").strip()
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3].rstrip() + "..."


@dataclass
class SweepReport:
    """What one sweep did: transfers whose holdings were deleted here, overdue certificates flagged,
    and the faults met (each left for the next sweep)."""

    deleted: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "deleted": self.deleted, "overdue": self.overdue, "faults": self.faults}


class Retention:
    def __init__(self, node: Node) -> None:
        self.node = node
        # Overdue transfers already flagged in the audit log, so each sweep need not look again.
        self._flagged: set[tuple[str, str]] = set()

    def sweep(self) -> SweepReport:
        """Delete what may no longer be kept and flag overdue certificates, for every hosted organisation.

        One failure (a locked keystore, a database fault) is logged and left for the next sweep; it
        never stops the rest.
        """
        report = SweepReport()
        for org in self.node.organisations():
            for step in (self._delete_expired, self._watch_deletions):
                try:
                    step(org.id, report)
                except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                    log.warning("retention sweep failed", organisation=org.id, step=step.__name__,
                                error=type(exc).__name__, detail=str(exc)[:200])
                    report.faults.append(f"{org.id}: {type(exc).__name__}: {str(exc)[:200]}")
        return report

    # The recipient: deleting -------------------------------------------------------------------

    def _stopped(self, org_id: str, hashes: list[str]) -> dict[str, tuple[AgreementRecord, str]]:
        """Of these agreement hashes, those whose agreement stopped, with the reason in words."""
        stopped: dict[str, tuple[AgreementRecord, str]] = {}
        for digest in hashes:
            record = self.node.agreement_register.by_hash(org_id, digest)
            if record is None:
                # Never destroy data on a lookup that failed; the guard refuses its use meanwhile.
                log.warning("agreement of received holdings not in the register", organisation=org_id,
                            agreement=digest)
                continue
            headline = _STOPPED.get(record.state)
            if headline is not None:
                stopped[digest] = (record, _reason(headline, record.stop_words() or record.state))
        return stopped

    def _delete_expired(self, org_id: str, report: SweepReport) -> None:
        node, now = self.node, self.node.clock()
        c, h = t.inbound.c, t.holdings.c
        kept = (c.org_id == org_id, c.state == DELIVERED, c.deleted_at.is_(None), c.holding_id.is_not(None),
                c.agreement_hash.is_not(None))
        with node.db.engine.connect() as conn:
            hashes = list(conn.execute(select(c.agreement_hash).where(*kept).distinct()).scalars())
        stopped = self._stopped(org_id, hashes)
        with node.db.engine.connect() as conn:
            # Past retention, under an agreement that stopped, or shredded by a person meanwhile.
            rows = conn.execute(
                select(c.transfer_id, c.agreement_hash, c.retain_until)
                .join(t.holdings, (h.id == c.holding_id) & (h.org_id == c.org_id))
                .where(*kept, or_(c.retain_until <= now, c.agreement_hash.in_(list(stopped)),
                                  h.shredded_at.is_not(None)))
                .order_by(c.completed_at, c.transfer_id)).all()
        for row in rows:
            if row.agreement_hash in stopped:
                reason = stopped[row.agreement_hash][1]
            elif row.retain_until is not None and utc(row.retain_until) <= now:
                reason = _reason(RETENTION_ENDED, f"kept until {iso(row.retain_until)}, as the agreement allows")
            else:
                reason = _reason(SHREDDED_EARLY, "the holding was shredded before its retention ended")
            try:
                if self.delete(org_id, row.transfer_id, reason):
                    report.deleted.append(row.transfer_id)
            except Exception as exc:  # noqa: BLE001 - one holding's fault must not keep the others
                log.warning("retention deletion failed", organisation=org_id, transfer=row.transfer_id,
                            error=type(exc).__name__, detail=str(exc)[:200])
                report.faults.append(f"{org_id} {row.transfer_id}: {type(exc).__name__}: {str(exc)[:200]}")

    def _inbound(self, org_id: str, transfer_id: str) -> InboundTransfer:
        with self.node.db.engine.connect() as conn:
            row = conn.execute(select(t.inbound).where(
                t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == transfer_id)).first()
        if row is None:
            raise NotFound(f"{org_id} received no transfer {transfer_id}.")
        return InboundTransfer.from_row(row)

    def delete(self, org_id: str, transfer_id: str, reason: str) -> bool:
        """Shred the holding a transfer brought, record its deletion and queue the certificate.

        False when its deletion was already recorded (by an earlier or a concurrent sweep).
        """
        node = self.node
        actor = _system(org_id)
        row = self._inbound(org_id, transfer_id)
        if row.deleted_at is not None or row.holding_id is None:
            return False
        holding = node.holdings.lookup(actor, row.holding_id)
        if not holding.shredded:
            try:
                node.holdings.shred(actor, holding.id)
            except Shredded:
                pass  # shredded a moment ago by someone else: what matters is that it is gone
            holding = node.holdings.lookup(actor, row.holding_id)
        # The moment the key was destroyed, also when recording it again after a crash.
        deleted = utc(holding.shredded_at or node.clock()).replace(microsecond=0)
        manifest = row.manifest
        certificate = DeletionCertificate(
            row.transfer_id, row.sender, org_id, manifest.holding.id, manifest.plaintext.sha256,
            manifest.ciphertext.sha256, manifest.agreement, reason, deleted)
        key_id, _public = node.keys.signing_key(org_id)
        store = node.keystore(org_id)
        document = make_certificate(certificate, key_id, lambda data: store.sign(key_id, data))
        c = t.inbound.c
        with node.db.engine.begin() as conn:
            changed = conn.execute(update(t.inbound).where(
                c.org_id == org_id, c.transfer_id == row.transfer_id, c.deleted_at.is_(None),
            ).values(deleted_at=deleted, deletion_reason=reason,
                     certificate=canonical_json(document).decode("utf-8"))).rowcount
            if changed == 1:
                node.notices.queue(conn, org_id, row.sender, DELETION_CERTIFICATE, row.transfer_id,
                                   deletion_path(row.transfer_id), document)
        if changed != 1:
            return False
        node.audit.append(org_id, RETENTION_ACTOR, "retention.delete", row.transfer_id, details={
            "sender": row.sender, "holding": holding.id, "agreement": manifest.agreement.id,
            "agreement_version": manifest.agreement.version, "reason": reason, "deleted": iso(deleted)})
        log.info("received holding deleted", organisation=org_id, transfer=row.transfer_id, holding=holding.id,
                 reason=reason)
        return True

    # The provider: certificates and overdue deletions -----------------------------------------

    def _watch_deletions(self, org_id: str, report: SweepReport) -> None:
        """Bring due dates forward for agreements that stopped; flag certificates more than a day late."""
        node, now = self.node, self.node.clock()
        c = t.transfers.c
        open_ = (c.org_id == org_id, c.state == DELIVERED, c.deletion_verified_at.is_(None),
                 c.agreement_hash.is_not(None))
        with node.db.engine.connect() as conn:
            hashes = list(conn.execute(select(c.agreement_hash).where(*open_).distinct()).scalars())
        for digest, (record, _words) in self._stopped(org_id, hashes).items():
            # Revoked: due at revocation; expired: at the end; superseded: when first seen here.
            moment = (record.revoked_at if record.state == REVOKED and record.revoked_at is not None
                      else agreement_end(record.agreement) if record.state == EXPIRED else now)
            with node.db.engine.begin() as conn:
                conn.execute(update(t.transfers).where(
                    *open_, c.agreement_hash == digest,
                    or_(c.deletion_due_at.is_(None), c.deletion_due_at > moment),
                ).values(deletion_due_at=moment))
        with node.db.engine.connect() as conn:
            late = conn.execute(select(c.id, c.recipient, c.deletion_due_at).where(
                *open_, c.deletion_due_at < now - DELETION_GRACE).order_by(c.deletion_due_at, c.id)).all()
        for row in late:
            flagged = (org_id, row.id) in self._flagged or any(
                e.action == "retention.overdue" for e in node.audit.entries(org_id, obj=row.id))
            if not flagged:
                due = iso(row.deletion_due_at)
                node.audit.append(org_id, RETENTION_ACTOR, "retention.overdue", row.id, details={
                    "recipient": row.recipient, "due": due,
                    "words": f"{row.recipient} has sent no deletion certificate; it was due on {due}"})
                log.warning("deletion certificate overdue", organisation=org_id, transfer=row.id,
                            recipient=row.recipient, due=due)
            self._flagged.add((org_id, row.id))
            report.overdue.append(row.id)

    def accept_certificate(self, org_id: str, sender: str, transfer_id: str,
                           data: bytes | dict[str, Any]) -> dict[str, Any]:
        """Verify and keep the deletion certificate ``sender`` sent for a transfer it received from us.

        Refused (NotFound, InvalidInput, SecurityError) unless it is signed by that recipient and names
        exactly what was sent (transfer, holding, hashes, agreement); every refusal is audited and
        nothing is stored. Repeating an accepted certificate changes nothing.
        """
        try:
            return self._accept(org_id, sender, transfer_id, data)
        except CivicshareError as exc:
            self.node.audit.append(org_id, RETENTION_ACTOR, "exchange.refused", transfer_id[:60], REFUSED, {
                "sender": sender, "step": "deletion-certificate", "code": exc.code, "reason": exc.message})
            raise

    def _accept(self, org_id: str, sender: str, transfer_id: str, data: bytes | dict[str, Any]) -> dict[str, Any]:
        node = self.node
        transfer_id = check_transfer_id(transfer_id)
        c = t.transfers.c
        with node.db.engine.connect() as conn:
            row = conn.execute(select(t.transfers).where(c.org_id == org_id, c.id == transfer_id)).first()
        if row is None or row.recipient != sender:
            raise NotFound(f"{org_id} sent no transfer {transfer_id} to {sender}.")
        transfer = Transfer.from_row(row)
        partner = node.trust.partner(org_id, sender)
        certificate, document = verify_certificate(data, recipient_key=partner.signing_key)
        check_certificate(certificate, transfer.manifest)
        now = node.clock()
        with node.db.engine.begin() as conn:
            changed = conn.execute(update(t.transfers).where(
                c.org_id == org_id, c.id == transfer_id, c.deletion_verified_at.is_(None),
            ).values(deletion_certificate=canonical_json(document).decode("utf-8"),
                     deletion_verified_at=now)).rowcount
        if changed == 1:
            node.audit.append(org_id, RETENTION_ACTOR, "transfer.deletion", transfer_id, details={
                "recipient": sender, "holding": transfer.holding_id, "reason": certificate.reason,
                "deleted": iso(certificate.deleted), "agreement": certificate.agreement.id,
                "agreement_version": certificate.agreement.version})
        with node.db.engine.connect() as conn:
            verified = conn.execute(select(c.deletion_verified_at).where(
                c.org_id == org_id, c.id == transfer_id)).scalar_one()
        return {"version": VERSION, "transfer": transfer_id, "deletion": "verified", "verified_at": iso(verified),
                "words": "deleted at recipient, certificate verified"}

    def accept_local(self, recipient: str, sender: str, path: str, document: dict[str, Any]) -> dict[str, Any]:
        """The notice outbox's handler for a certificate to an organisation on this same node."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "transfers" or parts[2] != "deletion":
            raise NotFound(f"There is no deletion route {path[:100]!r}.")
        return self.accept_certificate(recipient, sender, parts[1], document)
