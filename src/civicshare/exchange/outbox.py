"""The sender's outbox and ledger: sealing a holding for a partner, and every state change after.

``share`` first checks the data sharing agreement it names (civicshare.agreements.enforce): active,
naming this organisation as provider and the partner as recipient, covering the holding and its
classification, and a dataset's quality score against the agreement's minimum. A dataset is minimised
to the agreed fields before it is sealed, and its manifest carries its quality summary. It then seals the
holding to the partner's age recipient into ``outbox/<org>/<transfer>.age``,
signs the manifest and records the transfer (state ``queued``) in one insert: the transfer exists in
the outbox before a byte is sent. The delivery worker moves it through ``sending`` to ``delivered``
or ``failed``; the offline route writes a package instead (``exported``) and is closed by the
receipt carried back. Every change is a guarded UPDATE, so two workers, or a worker and a receipt,
can never move a transfer backwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from civicshare.access import Actor, Permission
from civicshare.agreements.enforce import (
    RULE_ACTIVE,
    RULE_NEEDED,
    HoldingFacts,
    check_share,
    require_active,
    require_agreement,
)
from civicshare.canonical import canonical_json
from civicshare.clock import new_id
from civicshare.crypto.datakeys import make_durable
from civicshare.db import tables as t
from civicshare.doorbell import ring
from civicshare.errors import (
    AgreementRefused,
    CivicshareError,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    UsageError,
)
from civicshare.exchange.manifest import DOCUMENT, PART_SIZE, AgreementRef, Manifest, sign_manifest
from civicshare.exchange.quality_summary import score_text, share_summary, to_manifest
from civicshare.exchange.receipt import Receipt, check_receipt, parse_receipt, peek_receipt
from civicshare.exchange.transfers import (
    DELIVERED,
    EXPORTED,
    FAILED,
    NETWORK,
    OFFLINE,
    QUEUED,
    SENDING,
    Transfer,
)

if TYPE_CHECKING:
    from civicshare.agreements.register import AgreementRecord
    from civicshare.exchange.client import PartnerClient
    from civicshare.node import Node

# While a worker sends a transfer it holds it this long; it renews the hold after every part.
LEASE = timedelta(seconds=60)
MAX_RECEIPT_FILE = 64 * 1024
_OPEN = (QUEUED, SENDING, EXPORTED)


class Outbox:
    def __init__(self, node: Node) -> None:
        self.node = node

    # Sharing -----------------------------------------------------------------------------------

    def share(self, actor: Actor, holding_id: str, to: str, *, agreement: str | None = None,
              out: Path | None = None, part_size: int = PART_SIZE, partners: PartnerClient | None = None) -> Transfer:
        """Seal ``holding_id`` to partner ``to`` under ``agreement`` and record the transfer; nothing is sent here.

        With ``partners`` (a client for signed requests), a document going over the network is sealed to
        a sealing key the partner makes for it (civicshare.exchange.sealing_keys), so the partner keeps
        the ciphertext as it arrives; if the partner cannot be asked, to the receiving key on its card.

        ``agreement`` is the id of an active agreement in this organisation's register (its newest
        version signed by every party) that allows this share; AgreementRefused, audited, otherwise.
        A dataset carries only the agreed fields. With ``out`` the package is written there instead
        (the offline route, state ``exported``). If anything fails, nothing is left behind: no ledger
        row, no payload, no package.
        """
        from civicshare.exchange.package import write_package
        from civicshare.exchange.payload import seal_holding

        node = self.node
        route = OFFLINE if out is not None else NETWORK
        with node.audit.event(actor, "transfer.create", None, recipient=to, holding=holding_id, route=route,
                              agreement=agreement) as event:
            actor.require(Permission.TRANSFERS_SHARE, "share holdings with partners")
            if to == actor.org_id:
                raise UsageError(f"{to} is this organisation; a holding is shared with a partner.")
            if out is not None and (out.exists() or out.is_symlink()):
                raise Conflict(f"{out} already exists; choose another file name.")
            partner = node.trust.partner(actor.org_id, to)
            if route == NETWORK and not partner.endpoint:
                raise UsageError(f"{to}'s card names no endpoint, so it cannot be reached over the network; "
                                 "share with --out FILE and carry the package to them.")
            record, columns, quality = self.agreed(actor, holding_id, to, agreement)
            ref = AgreementRef(record.id, record.version, record.hash)
            event.update(agreement=record.id, agreement_version=record.version, agreement_hash=record.hash)
            transfer_id = new_id("t", node.rng)
            event["object"] = transfer_id
            folder = node.layout.outbox_dir(actor.org_id)
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            dest = folder / f"{transfer_id}.age"
            sealed_to = partner.age_recipient
            if route == NETWORK and partners is not None:
                sealed_to = self._sealing_key(actor, partners, holding_id, to, transfer_id, event) or sealed_to
            wrote_package = False
            try:
                sealed = seal_holding(node, actor, holding_id, sealed_to, dest, part_size=part_size, columns=columns)
                now = node.clock()
                # The summary describes the shared columns only.
                info = replace(sealed.holding, quality=None if quality is None else
                               to_manifest(quality, sealed.holding.column_names))
                # Manifests state times to the second.
                manifest = Manifest(transfer_id, actor.org_id, to, now.replace(microsecond=0), ref,
                                    info, sealed.plaintext, sealed.ciphertext, sealed_to,
                                    sealed.part_size, tuple(sealed.part_hashes))
                key_id, _public = node.keys.signing_key(actor.org_id)
                store = node.keystore(actor.org_id)
                document = sign_manifest(manifest, key_id, lambda data: store.sign(key_id, data))
                if out is not None:
                    write_package(out, document, dest)
                    wrote_package = True
                with node.db.engine.begin() as conn:
                    conn.execute(insert(t.transfers).values(
                        id=transfer_id, org_id=actor.org_id, holding_id=sealed.holding.id, recipient=to,
                        agreement_id=record.id, agreement_version=record.version, agreement_hash=record.hash,
                        route=route, state=EXPORTED if out is not None else QUEUED,
                        manifest=canonical_json(document).decode("utf-8"),
                        payload=None if out is not None else str(dest.relative_to(node.layout.home)),
                        size=sealed.ciphertext.size, bytes_sent=0, attempts=0,
                        next_attempt_at=None if out is not None else now, created_at=now, created_by=actor.name,
                        updated_at=now))
            except BaseException:
                dest.unlink(missing_ok=True)
                if wrote_package and out is not None:
                    out.unlink(missing_ok=True)
                raise
            if out is not None:
                dest.unlink(missing_ok=True)  # the package carries the ciphertext now
            else:
                ring(node.layout.delivery_bell)  # a serving node delivers it now, not at its next look
                self._make_durable(actor.org_id, transfer_id, dest)
            event.update(kind=sealed.holding.kind, quality_score=score_text(info.quality),
                         plaintext_size=sealed.plaintext.size,
                         ciphertext_size=sealed.ciphertext.size, parts=len(sealed.part_hashes),
                         fields=sealed.holding.column_names if columns is not None else None)
            return self._get(actor.org_id, transfer_id)

    def _make_durable(self, org_id: str, transfer_id: str, payload: Path) -> None:
        """Force the sealed payload to the disk while a serving node may already be sending it.

        Delivery does not wait for the disk (writing a large payload durably takes seconds). Should the
        machine stop before this is done, the recipient refuses any part that came out damaged (it
        checks each against the signed manifest) and the worker, finding its own copy damaged, fails
        the transfer with the reason instead of sending it again (DeliveryWorker._put_part).
        """
        try:
            make_durable(payload)
        except OSError as exc:
            transfer = self._get(org_id, transfer_id)
            self.fail(transfer, f"The sealed payload could not be written to the disk ({exc.strerror}); share the "
                                "holding again.", "share")
            raise UsageError(f"Transfer {transfer_id} failed: its sealed payload could not be written to the disk "
                             f"({exc.strerror}).") from None

    def _sealing_key(self, actor: Actor, partners: PartnerClient, holding_id: str, to: str, transfer_id: str,
                     event: dict[str, Any]) -> str | None:
        """The age recipient ``to`` made for this document, or None: a dataset, or the partner could not
        be asked (why goes into the audit event)."""
        from civicshare.exchange.answers import Refused
        from civicshare.exchange.sealing_keys import ask

        if self.node.holdings.lookup(actor, holding_id).kind != DOCUMENT:
            return None
        try:
            recipient = ask(self.node, partners, actor.org_id, to, transfer_id)
        except (CivicshareError, Refused) as exc:
            event["sealed_to"] = "receiving key"
            event["sealing_key_refused"] = f"{exc.code}: {exc.message}"[:300]
            return None
        event["sealed_to"] = "sealing key"
        return recipient

    def agreed(self, actor: Actor, holding_id: str, to: str,
               agreement: str | None) -> tuple[AgreementRecord, list[str] | None, dict[str, Any] | None]:
        """The agreement this share goes under, once it allows it; the columns to seal and the quality
        summary (datasets). The share preview (civicshare.exchange.preview) runs this same check."""
        agreement_id = require_agreement(agreement)
        try:
            record = self.node.agreement_register.find(actor.org_id, agreement_id)
        except NotFound:
            raise AgreementRefused(RULE_NEEDED, f"{actor.org_id} has no agreement {agreement_id} in its "
                                                "register") from None
        holding = self.node.holdings.lookup(actor, holding_id)
        quality = share_summary(self.node, actor, holding)
        facts = HoldingFacts(holding.kind, holding.name, holding.media_type,
                             tuple(holding.columns) if holding.columns is not None else None, holding.classification,
                             None if quality is None else float(quality["score"]))
        return record, check_share(record, actor.org_id, to, facts), quality

    def recheck(self, transfer: Transfer) -> None:
        """Before each delivery attempt: the agreement the transfer went under must still be active.

        AgreementRefused, with the plain reason, once it ended, was revoked or superseded.
        """
        try:
            ref = transfer.manifest.agreement
        except InvalidInput:
            raise AgreementRefused(RULE_NEEDED, f"transfer {transfer.id} was queued before agreements were "
                                                "enforced; share the holding again under an agreement") from None
        record = self.node.agreement_register.by_hash(transfer.org_id, ref.sha256)
        if record is None:
            raise AgreementRefused(RULE_ACTIVE, f"agreement {ref.id} version {ref.version} is no longer in the "
                                                f"register of {transfer.org_id}")
        require_active(record)

    # The ledger --------------------------------------------------------------------------------

    def entries(self, actor: Actor) -> list[Transfer]:
        actor.require(Permission.TRANSFERS_READ, "see the transfers ledger")
        with self.node.db.engine.connect() as conn:
            rows = conn.execute(select(t.transfers).where(t.transfers.c.org_id == actor.org_id)
                                .order_by(t.transfers.c.created_at, t.transfers.c.id))
            return [Transfer.from_row(r) for r in rows]

    def get(self, actor: Actor, transfer_id: str) -> Transfer:
        actor.require(Permission.TRANSFERS_READ, "see the transfers ledger")
        return self._get(actor.org_id, transfer_id)

    def _get(self, org_id: str, transfer_id: str) -> Transfer:
        with self.node.db.engine.connect() as conn:
            row = conn.execute(select(t.transfers).where(
                t.transfers.c.org_id == org_id, t.transfers.c.id == transfer_id)).first()
        if row is None:
            raise NotFound(f"No transfer {transfer_id!r} in the ledger of {org_id}.")
        return Transfer.from_row(row)

    # State changes, for the delivery worker ----------------------------------------------------

    def due(self, now: datetime, *, recover: bool = False) -> list[Transfer]:
        """Network transfers of the hosted organisations waiting for an attempt, oldest first.

        ``recover`` also takes transfers another worker holds (the first pass after a restart: a
        worker that died holding a transfer would otherwise keep it until its lease ran out).
        """
        c = t.transfers.c
        query = select(t.transfers).where(c.route == NETWORK, c.state.in_((QUEUED, SENDING)))
        if not recover:
            query = query.where(c.next_attempt_at <= now)
        with self.node.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(c.next_attempt_at, c.id))
            return [Transfer.from_row(r) for r in rows]

    def claim(self, transfer: Transfer, now: datetime) -> Transfer | None:
        """Take the transfer for one attempt (state sending, attempts + 1); None if another worker did."""
        c = t.transfers.c
        with self.node.db.engine.begin() as conn:
            # ``attempts`` is the version: whoever counts the attempt first owns it.
            claimed = conn.execute(update(t.transfers).where(
                c.id == transfer.id, c.state.in_((QUEUED, SENDING)), c.attempts == transfer.attempts,
            ).values(state=SENDING, attempts=transfer.attempts + 1, next_attempt_at=now + LEASE,
                     updated_at=now)).rowcount
        return self._get(transfer.org_id, transfer.id) if claimed == 1 else None

    def progress(self, transfer: Transfer, bytes_sent: int, now: datetime) -> None:
        """Record bytes the recipient acknowledged, and renew the worker's hold."""
        c = t.transfers.c
        with self.node.db.engine.begin() as conn:
            conn.execute(update(t.transfers).where(c.id == transfer.id, c.state == SENDING).values(
                bytes_sent=bytes_sent, next_attempt_at=now + LEASE, updated_at=now))

    def retry_later(self, transfer: Transfer, error: str, delay: float, now: datetime) -> None:
        c = t.transfers.c
        with self.node.db.engine.begin() as conn:
            conn.execute(update(t.transfers).where(c.id == transfer.id, c.state == SENDING).values(
                last_error=error, next_attempt_at=now + timedelta(seconds=delay), updated_at=now))

    def fail(self, transfer: Transfer, reason: str, actor_name: str) -> bool:
        """Give the transfer up for good, with the reason; False if it was already closed."""
        node = self.node
        now = node.clock()
        c = t.transfers.c
        with node.db.engine.begin() as conn:
            changed = conn.execute(update(t.transfers).where(c.id == transfer.id, c.state.in_(_OPEN)).values(
                state=FAILED, failed_reason=reason, last_error=reason, next_attempt_at=None,
                updated_at=now)).rowcount
        if changed != 1:
            return False
        node.audit.append(transfer.org_id, actor_name, "transfer.failed", transfer.id, "failed", {
            "recipient": transfer.recipient, "holding": transfer.holding_id, "reason": reason,
            "attempts": transfer.attempts})
        self._drop_payload(transfer)
        return True

    def delivered(self, transfer: Transfer, receipt_document: dict[str, Any], actor_name: str) -> bool:
        """Verify the recipient's receipt and close the transfer as delivered.

        The receipt must be signed by the recipient, answer exactly our manifest, and carry a
        checkpoint of the recipient's audit log that verifies with its audit key; that checkpoint is
        kept as witnessed. Raises (SecurityError, IntegrityError, InvalidInput) if anything fails.
        Returns False if the transfer was already closed (another worker got there first).
        """
        node = self.node
        partner = node.trust.partner(transfer.org_id, transfer.recipient)
        receipt, document = parse_receipt(receipt_document, recipient_key=partner.signing_key)
        check_receipt(receipt, transfer.manifest, transfer.manifest_document)
        node.witnesses.keep(transfer.org_id, transfer.recipient, receipt.checkpoint, partner.audit_verifier_key,
                            via="receipt")
        now = node.clock()
        c = t.transfers.c
        from civicshare.agreements.retention import deletion_due  # the recipient must delete it by then
        due = deletion_due(node, transfer.org_id, transfer.manifest.agreement, now)
        with node.db.engine.begin() as conn:
            changed = conn.execute(update(t.transfers).where(c.id == transfer.id, c.state.in_(_OPEN)).values(
                state=DELIVERED, delivered_at=now, receipt=canonical_json(document).decode("utf-8"),
                bytes_sent=transfer.size, last_error=None, next_attempt_at=None, updated_at=now,
                deletion_due_at=due)).rowcount
        if changed != 1:
            return False
        node.audit.append(transfer.org_id, actor_name, "transfer.delivered", transfer.id, details={
            "recipient": transfer.recipient, "holding": transfer.holding_id, "route": transfer.route,
            "their_holding": receipt.holding, "ciphertext_size": transfer.size,
            "attempts": transfer.attempts})
        self._drop_payload(transfer)
        return True

    def _drop_payload(self, transfer: Transfer) -> None:
        path = transfer.payload_path(self.node.layout.home)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # The offline route's receipt ---------------------------------------------------------------

    def accept_receipt(self, actor: Actor, path: Path) -> Transfer:
        """Close an exported transfer with the receipt the recipient wrote; repeating it changes nothing.

        A refused receipt is logged (``transfer.delivered``, refused); an accepted one is logged once,
        by ``delivered``.
        """
        transfer_id: str | None = None
        try:
            actor.require(Permission.TRANSFERS_SHARE, "record receipts for transfers")
            data = _read_small(path, MAX_RECEIPT_FILE, "receipt")
            claimed: Receipt = peek_receipt(data)
            transfer_id = claimed.transfer
            transfer = self._get(actor.org_id, claimed.transfer)
            if claimed.sender != actor.org_id or claimed.recipient != transfer.recipient:
                raise IntegrityError(f"This receipt is for a transfer from {claimed.sender} to {claimed.recipient}, "
                                     f"not this one from {actor.org_id} to {transfer.recipient}.")
            if transfer.state == DELIVERED:
                return transfer
            if transfer.state != EXPORTED:
                raise Conflict(f"Transfer {transfer.id} is {transfer.state}; only an exported transfer is closed "
                               "by a receipt carried back.")
            partner = self.node.trust.partner(actor.org_id, transfer.recipient)
            _receipt, document = parse_receipt(data, recipient_key=partner.signing_key)
            self.delivered(transfer, document, actor.name)
        except CivicshareError as exc:
            self.node.audit.append(actor.org_id, actor.name, "transfer.delivered", transfer_id, "refused",
                                   {"route": OFFLINE, "code": exc.code, "reason": exc.message})
            raise
        return self._get(actor.org_id, transfer.id)


def _read_small(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"There is no {what} file {path}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read the {what} file {path}: {exc.strerror}.") from None
    if len(data) > limit:
        raise UsageError(f"{path} is larger than any {what} ({limit:,} bytes).")
    return data
