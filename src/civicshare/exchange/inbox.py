"""The recipient's inbox: manifests, parts and commits of arriving transfers, and offline packages.

The agreement the manifest names is checked independently of the sender when the manifest arrives
and again at commit (AgreementGuard.check_arrival); a refusal is audited and nothing is stored.

Every step is idempotent, because the sender repeats whatever it is not sure arrived:

* the same manifest again answers the current status; a different one for the same transfer id is
  refused (``manifest_refused``);
* a part is checked against the manifest's hash for it, then handed in memory to the transfer's
  early opening (:mod:`civicshare.exchange.early_open`) or written as ciphertext to
  ``staging/<org>/<transfer>/part-<n>`` (temporary file, then linked into place, so a part is whole
  or absent); a part already there is simply acknowledged;
* commit runs under a per-transfer file lock (held by the process, released by the kernel if it dies),
  so two commits never both open the payload. The new holding is created by the operator
  ``transfer <id> from <sender>``: if a crash left that holding stored but the inbox row not updated,
  the retry adopts it instead of making a second one. A commit after delivery answers the stored receipt.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import Actor, Permission
from civicshare.canonical import canonical_json
from civicshare.db import tables as t
from civicshare.errors import (
    AgreementRefused,
    CivicshareError,
    Conflict,
    DigestMismatch,
    IntegrityError,
    InvalidInput,
    ManifestRefused,
    NotForUs,
    NotFound,
    PartRefused,
    SecurityError,
)
from civicshare.exchange.early_open import EarlyOpenings
from civicshare.exchange.fields import transfer_id
from civicshare.exchange.manifest import Manifest, manifest_sha256, parse_manifest, peek_manifest
from civicshare.exchange.quality_summary import keep_received
from civicshare.exchange.receipt import Receipt, sign_receipt
from civicshare.exchange.sealing_keys import SealingKeys
from civicshare.exchange.staging import Staging
from civicshare.exchange.transfers import (
    DELIVERED,
    NETWORK,
    OFFLINE,
    RECEIVER,
    RECEIVING,
    REFUSED,
    VERSION,
    InboundTransfer,
)
from civicshare.holdings.store import Holding

if TYPE_CHECKING:
    from civicshare.node import Node



def check_transfer_id(value: str) -> str:
    """A transfer id from a URL, checked before it names anything on disk."""
    try:
        return transfer_id(value)
    except InvalidInput:
        raise NotFound(f"There is no transfer {value[:60]!r}; transfer ids look like t_4kq3...") from None


def creator_name(transfer: str, sender: str) -> str:
    """The operator name a received holding is created by; it names the transfer, so a retry finds it."""
    return f"transfer {transfer} from {sender}"


class Inbox:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.staging = Staging(node.layout, node.rng)
        self.early = EarlyOpenings(self)
        self.sealing = SealingKeys(node)

    # Reading -----------------------------------------------------------------------------------

    def entries(self, actor: Actor) -> list[InboundTransfer]:
        actor.require(Permission.HOLDINGS_READ, "see arriving transfers")
        with self.node.db.engine.connect() as conn:
            rows = conn.execute(select(t.inbound).where(t.inbound.c.org_id == actor.org_id)
                                .order_by(t.inbound.c.created_at, t.inbound.c.transfer_id))
            return [InboundTransfer.from_row(r) for r in rows]

    def _row(self, org_id: str, transfer: str) -> InboundTransfer | None:
        with self.node.db.engine.connect() as conn:
            row = conn.execute(select(t.inbound).where(
                t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == transfer)).first()
        return None if row is None else InboundTransfer.from_row(row)

    def mine(self, org_id: str, sender: str, transfer: str) -> InboundTransfer:
        """The inbox row of ``transfer``, if ``sender`` sent it; another sender learns nothing of it."""
        row = self._row(org_id, check_transfer_id(transfer))
        if row is None or row.sender != sender:
            raise NotFound(f"{org_id} has no transfer {transfer} from {sender}; send its manifest first.")
        if row.state == REFUSED:
            raise NotForUs(row.refused_reason or f"Transfer {transfer} was refused.")
        return row

    def status(self, org_id: str, sender: str, transfer: str) -> dict[str, Any]:
        return self._status(self.mine(org_id, sender, transfer))

    def _received(self, org_id: str, transfer: str, manifest: Manifest) -> list[int]:
        """The parts staged on disk, and those a running early opening holds in memory."""
        present = set(self.staging.parts_present(org_id, transfer, manifest.part_lengths))
        handoff = self.early.handoff(org_id, transfer)
        if handoff is not None:
            present |= handoff.accepted
        return sorted(present)

    def _status(self, row: InboundTransfer) -> dict[str, Any]:
        manifest = row.manifest
        parts = list(range(manifest.part_count)) if row.state == DELIVERED else self._received(
            row.org_id, row.transfer_id, manifest)
        return {"version": VERSION, "transfer": row.transfer_id, "state": row.state, "parts_received": parts,
                "receipt": row.receipt}

    def _refuse(self, org_id: str, sender: str, transfer: str | None, exc: CivicshareError, **details: Any) -> None:
        if isinstance(exc, AgreementRefused):
            details.update(rule=exc.rule)
        self.node.audit.append(org_id, RECEIVER, "transfer.refused", transfer, "refused", {
            "sender": sender, "code": exc.code, "reason": exc.message, **details})

    # The manifest ------------------------------------------------------------------------------

    def accept_manifest(self, org_id: str, sender: str, transfer: str, data: bytes | dict[str, Any], *,
                        route: str = NETWORK) -> tuple[Manifest, dict[str, Any], InboundTransfer]:
        """Verify a manifest from the authenticated ``sender`` and open (or find) its inbox row."""
        transfer = check_transfer_id(transfer)
        try:
            return self._accept_manifest(org_id, sender, transfer, data, route)
        except CivicshareError as exc:
            self._refuse(org_id, sender, transfer, exc, step="manifest")
            raise

    def _accept_manifest(self, org_id: str, sender: str, transfer: str, data: bytes | dict[str, Any],
                         route: str) -> tuple[Manifest, dict[str, Any], InboundTransfer]:
        partner = self.node.trust.partner(org_id, sender)
        try:
            manifest, document = parse_manifest(data, sender_key=partner.signing_key)
        except (InvalidInput, SecurityError) as exc:
            raise ManifestRefused(f"The manifest of transfer {transfer} does not verify: {exc.one_line()}",
                                  problems=exc.problems) from None
        if manifest.transfer != transfer:
            raise ManifestRefused(f"The manifest is for transfer {manifest.transfer}, not {transfer}.")
        if manifest.sender != sender:
            raise ManifestRefused(f"The manifest names {manifest.sender} as its sender, but {sender} sent it.")
        if manifest.recipient != org_id:
            raise NotForUs(f"Transfer {transfer} is addressed to {manifest.recipient}, not {org_id}.")
        _key_id, ours = self.node.keys.age_recipient(org_id)
        if not hmac.compare_digest(manifest.age_recipient, ours) and self.sealing.sealed_to(
                org_id, manifest) is None:
            raise NotForUs(f"Transfer {transfer} is sealed to {manifest.age_recipient}, which is neither the "
                           f"receiving key of {org_id} nor a sealing key it made for this document.")
        text = canonical_json(document).decode("utf-8")
        begun = self._row(org_id, transfer)
        if begun is None or begun.state == RECEIVING:
            # Once delivered, a repeated manifest is answered with the receipt, whatever became of the agreement.
            self.node.agreement_guard.check_arrival(org_id, manifest)
        ref = manifest.agreement
        try:
            with self.node.db.engine.begin() as conn:
                conn.execute(insert(t.inbound).values(
                    org_id=org_id, transfer_id=transfer, sender=sender, route=route, state=RECEIVING,
                    manifest=text, bytes_received=0, created_at=self.node.clock(), agreement_id=ref.id,
                    agreement_version=ref.version, agreement_hash=ref.sha256))
        except SAIntegrityError:
            pass  # begun before (or at this moment by a repeat); compared below
        row = self._row(org_id, transfer)
        assert row is not None
        if row.sender != sender or not hmac.compare_digest(manifest_sha256(row.manifest_document),
                                                           manifest_sha256(document)):
            raise ManifestRefused(f"Transfer {transfer} was begun with a different manifest; a transfer id is "
                                  "used for one manifest only.")
        if row.state == REFUSED:
            raise NotForUs(row.refused_reason or f"Transfer {transfer} was refused.")
        if hmac.compare_digest(manifest.age_recipient, ours):
            # Sealed to the card's key after all (the sealing key's answer was lost on the way, say):
            # a sealing key made for this transfer will never be used.
            self.sealing.discard(org_id, transfer)
        return manifest, document, row

    def put_manifest(self, org_id: str, sender: str, transfer: str, data: bytes) -> dict[str, Any]:
        """``PUT /transfers/{id}``: the transfer status."""
        _manifest, _document, row = self.accept_manifest(org_id, sender, transfer, data)
        return self._status(row)

    # Parts -------------------------------------------------------------------------------------

    def put_part(self, org_id: str, sender: str, transfer: str, n: int, data: bytes, *,
                 body_sha256: bytes | None = None) -> dict[str, Any]:
        """``PUT /transfers/{id}/parts/{n}``: check part ``n`` against the manifest and stage it.

        ``body_sha256`` is the SHA-256 of ``data`` when the caller already verified it (the gate checks
        the signed Content-Digest against the body); otherwise the part is hashed here.
        """
        row = self.mine(org_id, sender, transfer)
        answer = {"version": VERSION, "transfer": row.transfer_id, "part": n, "stored": True}
        if row.state == DELIVERED:
            return answer
        manifest = row.manifest
        try:
            if not 0 <= n < manifest.part_count:
                raise PartRefused(f"Transfer {transfer} has parts 0 to {manifest.part_count - 1}; there is no "
                                  f"part {n}.")
            expected = manifest.part_length(n)
            if len(data) != expected:
                raise PartRefused(f"Part {n} of transfer {transfer} is {len(data)} bytes; its manifest says "
                                  f"{expected}.")
            digest = body_sha256.hex() if body_sha256 is not None else hashlib.sha256(data).hexdigest()
            if not hmac.compare_digest(digest, manifest.part_hashes[n]):
                raise DigestMismatch(f"Part {n} of transfer {transfer} does not match its hash in the manifest: "
                                     "it was damaged on the way.")
        except CivicshareError as exc:
            self._refuse(org_id, sender, transfer, exc, step="part", part=n)
            raise
        handoff = self.early.handoff(org_id, row.transfer_id)
        if handoff is not None and n in handoff.accepted:
            return answer  # a repeat of a part the early opening took: acknowledged, counted once
        # A running early opening takes the part in memory; otherwise (or if it cannot) it is staged.
        taken = handoff is not None and handoff.offer(
            n, data, staged=lambda p: self.staging.has_part(org_id, row.transfer_id, p, manifest.part_length(p)))
        if taken or self.staging.stage(org_id, transfer, n, data):
            with self.node.db.engine.begin() as conn:
                conn.execute(update(t.inbound).where(
                    t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == transfer, t.inbound.c.state == RECEIVING,
                ).values(bytes_received=t.inbound.c.bytes_received + len(data)))
        return answer

    def part_arrived(self, org_id: str, sender: str, transfer: str, n: int, data: bytes, *,
                     body_sha256: bytes | None = None) -> dict[str, Any]:
        """A part arriving over the network: start (or join) the transfer's early opening first, so it
        can take this very part in memory, then check and keep the part as :meth:`put_part` does.

        The opening decrypts and re-seals while the rest arrives (one per transfer at a time; after a
        resume or a pause, the next part starts it again), so the commit finds the work done.
        """
        self.open_early(org_id, sender, transfer)
        return self.put_part(org_id, sender, transfer, n, data, body_sha256=body_sha256)

    # Commit ------------------------------------------------------------------------------------

    def open_early(self, org_id: str, sender: str, transfer: str) -> bool:
        """Begin opening ``transfer`` in the background while its parts still arrive (see
        :mod:`civicshare.exchange.early_open`); False if an early opening of it is already running."""
        return self.early.start(org_id, sender, transfer)

    def commit(self, org_id: str, sender: str, transfer: str) -> dict[str, Any]:
        """``POST /transfers/{id}/commit``: open the staged parts into a holding; the signed receipt."""
        row = self.mine(org_id, sender, transfer)
        if row.state == DELIVERED and row.receipt is not None:
            return {"version": VERSION, "transfer": row.transfer_id, "receipt": row.receipt}
        # Missing parts are answered at once, not after waiting for the lock (an early opening holds it
        # while it waits for those very parts); checked again under the lock.
        self._require_all_parts(org_id, row.transfer_id, row.manifest, in_memory=True)
        with self.staging.locked(org_id, row.transfer_id):
            row = self.mine(org_id, sender, row.transfer_id)  # as it is now, under the lock
            if row.state != DELIVERED:
                manifest = row.manifest
                self._require_all_parts(org_id, row.transfer_id, manifest, in_memory=False)
                with self.staging.reader(org_id, row.transfer_id, manifest.part_count,
                                         hashes=manifest.part_hashes) as reader:
                    row = self.open_into_holding(row, manifest, reader, parts_verified=True)
        self.staging.finished(org_id, row.transfer_id)
        assert row.receipt is not None
        return {"version": VERSION, "transfer": row.transfer_id, "receipt": row.receipt}

    def _require_all_parts(self, org_id: str, transfer: str, manifest: Manifest, *, in_memory: bool) -> None:
        """Conflict unless every part is staged (or, ``in_memory``, held by a running early opening too:
        under the lock, only what the commit itself can read counts)."""
        present = (self._received(org_id, transfer, manifest) if in_memory
                   else self.staging.parts_present(org_id, transfer, manifest.part_lengths))
        missing = sorted(set(range(manifest.part_count)) - set(present))
        if missing:
            shown = ", ".join(str(n) for n in missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise Conflict(f"Transfer {transfer} cannot be committed yet: parts {shown} have not arrived.")

    def _adopt(self, org_id: str, name: str) -> Holding | None:
        """The holding a crashed commit of this transfer stored, if there is one."""
        with self.node.db.engine.connect() as conn:
            found = conn.execute(select(t.holdings.c.id).where(
                t.holdings.c.org_id == org_id, t.holdings.c.created_by == name)
                .order_by(t.holdings.c.created_at)).first()
        if found is None:
            return None
        return self.node.holdings._get(Actor.operator(org_id, RECEIVER), found.id)

    def open_into_holding(self, row: InboundTransfer, manifest: Manifest, source: BinaryIO, *,
                          parts_verified: bool = False) -> InboundTransfer:
        """Store the payload as a holding (or adopt the one a crashed commit stored), log, sign the receipt.

        ``parts_verified``: ``source`` is the staged parts, each checked against its hash on arrival and
        read from a staging reader given the manifest's hashes (which checks each staged part again)."""
        from civicshare.exchange.payload import open_payload

        node, org_id = self.node, row.org_id
        name = creator_name(row.transfer_id, row.sender)
        holding = self._adopt(org_id, Actor.operator(org_id, name).name)
        try:
            # Again: it may have ended or been revoked since the manifest arrived.
            node.agreement_guard.check_arrival(org_id, manifest)
        except AgreementRefused as exc:
            self._refuse(org_id, row.sender, row.transfer_id, exc, step="commit")
            self._close_refused(row, exc)
            if holding is not None and not holding.shredded:  # stored by a commit that crashed
                node.holdings.shred(Actor.operator(org_id, RECEIVER), holding.id)
            raise
        if holding is None:
            try:
                holding = open_payload(node, org_id, source, manifest, actor_name=name,
                                       parts_verified=parts_verified)
            except NotForUs as exc:
                self._refuse(org_id, row.sender, row.transfer_id, exc, step="commit")
                self._close_refused(row, exc)
                raise
            except IntegrityError as exc:
                # Damage on the path: the parts go, the transfer stays open for the sender to resend.
                self._refuse(org_id, row.sender, row.transfer_id, exc, step="commit")
                self.staging.drop(org_id, row.transfer_id)
                with node.db.engine.begin() as conn:
                    conn.execute(update(t.inbound).where(
                        t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == row.transfer_id,
                        t.inbound.c.state == RECEIVING).values(bytes_received=0))
                raise
        keep_received(node, org_id, holding.id, manifest.holding.quality, sender=row.sender, transfer=row.transfer_id)
        node.audit.append(org_id, RECEIVER, "transfer.receive", row.transfer_id, details={
            "sender": row.sender, "transfer": row.transfer_id, "holding": holding.id, "route": row.route,
            "kind": manifest.holding.kind, "plaintext_size": manifest.plaintext.size,
            "ciphertext_size": manifest.ciphertext.size})
        checkpoint = node.audit_checkpoint(Actor.operator(org_id, RECEIVER))
        now = node.clock()
        receipt = Receipt(row.transfer_id, row.sender, org_id, manifest_sha256(row.manifest_document),
                          manifest.plaintext, manifest.ciphertext, holding.id, now.replace(microsecond=0),
                          checkpoint.note)
        key_id, _public = node.keys.signing_key(org_id)
        store = node.keystore(org_id)
        document = sign_receipt(receipt, key_id, lambda data: store.sign(key_id, data))
        from civicshare.agreements.retention import retain_until  # how long the agreement lets us keep it
        keep_until = retain_until(node, org_id, manifest.agreement, now)
        with node.db.engine.begin() as conn:
            conn.execute(update(t.inbound).where(
                t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == row.transfer_id,
                t.inbound.c.state == RECEIVING,
            ).values(state=DELIVERED, holding_id=holding.id, receipt=canonical_json(document).decode("utf-8"),
                     bytes_received=manifest.ciphertext.size, completed_at=now, retain_until=keep_until))
        final = self._row(org_id, row.transfer_id)
        assert final is not None
        return final

    def _close_refused(self, row: InboundTransfer, exc: CivicshareError) -> None:
        """Refuse the transfer for good: the reason is kept, the staged parts go."""
        with self.node.db.engine.begin() as conn:
            conn.execute(update(t.inbound).where(
                t.inbound.c.org_id == row.org_id, t.inbound.c.transfer_id == row.transfer_id,
                t.inbound.c.state == RECEIVING).values(state=REFUSED, refused_reason=exc.message,
                                                         completed_at=self.node.clock()))
        self.staging.drop(row.org_id, row.transfer_id)
        self.sealing.discard(row.org_id, row.transfer_id)

    # The offline route -------------------------------------------------------------------------

    def import_package(self, actor: Actor, path: Path, *, receipt_out: Path | None = None) -> dict[str, Any]:
        """Import an offline package: the same checks and storage as the commit route; writes the receipt.

        A repeat import of the same package stores nothing new and writes the same receipt again.
        """
        from civicshare.exchange.package import read_package, write_receipt

        actor.require(Permission.HOLDINGS_IMPORT, "receive transfers")
        org_id = actor.org_id
        receipt_out = receipt_out or path.with_name(path.name + ".receipt.json")
        with self.staging.work_folder(org_id) as work:
            document, payload = read_package(path, work)
            claimed = peek_manifest(document)
            manifest, document, row = self.accept_manifest(org_id, claimed.sender, claimed.transfer, document,
                                                           route=OFFLINE)
            if row.state != DELIVERED:
                with self.staging.locked(org_id, row.transfer_id):
                    row = self._row(org_id, row.transfer_id) or row
                    if row.state == REFUSED:
                        raise NotForUs(row.refused_reason or f"Transfer {row.transfer_id} was refused.")
                    if row.state != DELIVERED:
                        with payload.open("rb") as source:
                            row = self.open_into_holding(row, manifest, source)
                self.staging.finished(org_id, row.transfer_id)
        assert row.receipt is not None
        write_receipt(receipt_out, canonical_json(row.receipt) + b"\n")
        return {"version": VERSION, "kind": "package", "transfer": row.transfer_id, "sender": row.sender,
                "holding": row.holding_id, "receipt": str(receipt_out), "state": row.state}

