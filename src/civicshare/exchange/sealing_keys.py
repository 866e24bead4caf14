"""Sealing keys: the recipient makes the data key of a document before the sender seals it to it.

Without one, the sender seals a payload to the recipient's long-term receiving key (on its card), and
the recipient decrypts it and seals the plaintext again under a fresh data key. With one, the
payload already is the new holding's blob: the recipient decrypts it once, only to check the
plaintext against the manifest, and keeps the ciphertext as it arrived.

The sender asks before it seals a document (``POST /orgs/{org}/transfers/{id}/sealing-key``, a signed
request). The recipient makes a document data key like any other, wrapped by its KEK in the key
register for a holding id it reserves for that transfer (so KEK rotation re-wraps it and the key
register lists it), and answers a signed document of kind ``sealing-key`` naming the transfer, both
organisations and the key's age recipient. The sender checks the signature with the recipient's
pinned signing key, so nobody on the path can put a key of their own in its place. A partner that
cannot be asked (offline, unreachable, refusing) is no obstacle: the sender seals to the card's
receiving key, as it always did.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.canonical import canonical_json, parse_json
from civicshare.clock import new_id
from civicshare.crypto.datakeys import document_recipient, new_document_key
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, Conflict, IntegrityError, InvalidInput, NotFound, UsageError
from civicshare.exchange.fields import (
    Checker,
    age_recipient_text,
    doc_time,
    org_id,
    parse_time,
    read_document,
    transfer_id,
)
from civicshare.exchange.manifest import DOCUMENT, Manifest
from civicshare.exchange.signed import Signer, document_body, sign_document, verify_document
from civicshare.exchange.transfers import RECEIVER, VERSION

if TYPE_CHECKING:
    from civicshare.exchange.client import PartnerClient
    from civicshare.node import Node

SEALING_KEY = "sealing-key"
MAX_SEALING_KEY_BYTES = 16 * 1024
# Sealing keys a sender may hold open at one recipient (asked for, not yet used): a bound on what a
# partner can make this node store.
MAX_OPEN = 200
# A sealing key nobody sealed a manifest to within this time is destroyed (the share was given up).
UNUSED_FOR = timedelta(days=30)
_FIELDS = ("transfer", "sender", "recipient", "age_recipient", "created")


@dataclass(frozen=True)
class SealingKey:
    """The recipient's signed word: seal transfer ``transfer`` from ``sender`` to ``age_recipient``."""

    transfer: str
    sender: str
    recipient: str
    age_recipient: str
    created: datetime

    def to_body(self) -> dict[str, Any]:
        return {"transfer": self.transfer, "sender": self.sender, "recipient": self.recipient,
                "age_recipient": self.age_recipient, "created": doc_time(self.created)}

    @classmethod
    def from_body(cls, body: object) -> SealingKey:
        """Check every field; InvalidInput lists each fault with its field path."""
        if not isinstance(body, dict):
            raise InvalidInput("The body of a sealing key is a JSON object.")
        check = Checker()
        check.fields(body, _FIELDS, "", "sealing key")
        transfer = check.field(body, "transfer", transfer_id)
        sender = check.field(body, "sender", org_id)
        recipient = check.field(body, "recipient", org_id)
        recipient_key = check.field(body, "age_recipient", age_recipient_text)
        created = check.field(body, "created", parse_time)
        if not check.problems and sender == recipient:
            check.add("names the sender as its own recipient", "recipient")
        check.raise_if_any("This is not a valid civicshare sealing key")
        return cls(transfer, sender, recipient, recipient_key, created)


def sign_sealing_key(key: SealingKey, key_id_hint: str, sign: Signer) -> dict[str, Any]:
    body = key.to_body()
    if SealingKey.from_body(body) != key:
        raise UsageError("This sealing key does not survive being written out; it was built wrongly.")
    return sign_document(SEALING_KEY, body, key_id_hint, sign)


def parse_sealing_key(data: str | bytes | dict[str, Any], *, recipient_key: bytes) -> SealingKey:
    """Read a signed sealing key and verify it with the recipient's Ed25519 key.

    TooLarge or InvalidInput when malformed; SecurityError when the signature does not verify.
    """
    document = read_document(data, SEALING_KEY, MAX_SEALING_KEY_BYTES)
    key = SealingKey.from_body(document_body(SEALING_KEY, document))
    verify_document(SEALING_KEY, document, recipient_key)
    return key


# The sender ----------------------------------------------------------------------------------------

def ask(node: Node, client: PartnerClient, sender: str, to: str, transfer: str) -> str:
    """The age recipient ``to`` made for ``transfer``, checked.

    Any CivicshareError, or ``Refused`` (civicshare.exchange.answers), if it cannot be had.
    """
    from civicshare.exchange.answers import read_answer

    partner = node.trust.partner(sender, to)
    response = client.request(sender, to, "POST", f"/transfers/{transfer}/sealing-key")
    answer = read_answer(response, to, "request for a sealing key", frozenset())
    document = answer.get("sealing_key")
    if not isinstance(document, dict):
        raise InvalidInput(f"{to} answered the request for a sealing key without one.")
    key = parse_sealing_key(document, recipient_key=partner.signing_key)
    if (key.transfer, key.sender, key.recipient) != (transfer, sender, to):
        raise IntegrityError(f"{to} answered with a sealing key for transfer {key.transfer} from {key.sender} to "
                             f"{key.recipient}, not this one.")
    return key.age_recipient


# The recipient -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """A sealing key this organisation made: its key in the register, and the holding id it is for."""

    org_id: str
    transfer: str
    sender: str
    key_id: str
    holding_id: str
    age_recipient: str
    document: dict[str, Any]


class SealingKeys:
    """The sealing keys the hosted organisations made for transfers on their way to them."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def find(self, org_id: str, transfer: str) -> Reservation | None:
        with self.node.db.engine.connect() as conn:
            row = conn.execute(select(t.sealing_keys).where(
                t.sealing_keys.c.org_id == org_id, t.sealing_keys.c.transfer_id == transfer)).first()
        return None if row is None else _reservation(row)

    def sealed_to(self, org_id: str, manifest: Manifest) -> Reservation | None:
        """The sealing key ``org_id`` made for this document transfer, if it is sealed to it; None otherwise."""
        reserved = self.find(org_id, manifest.transfer)
        if (reserved is None or reserved.sender != manifest.sender or manifest.holding.kind != DOCUMENT
                or not hmac.compare_digest(reserved.age_recipient, manifest.age_recipient)):
            return None
        return reserved

    def issue(self, org_id: str, sender: str, transfer: str) -> dict[str, Any]:
        """``POST /transfers/{id}/sealing-key``: the answer carrying the signed sealing key for ``transfer``
        from ``sender``. A refusal is audited (``transfer.refused``).

        The same transfer gets the same key again. NotFound if another sender asked for this transfer
        id; Conflict once its manifest has arrived (the payload is sealed already), or while the
        sender holds MAX_OPEN keys it has not used.
        """
        try:
            try:
                transfer = transfer_id(transfer)
            except InvalidInput:
                raise NotFound(f"There is no transfer {transfer[:60]!r}; transfer ids look like t_4kq3...") from None
            return {"version": VERSION, "transfer": transfer, "sealing_key": self._issue(org_id, sender, transfer)}
        except CivicshareError as exc:
            self.node.audit.append(org_id, RECEIVER, "transfer.refused", transfer[:60], "refused", {
                "sender": sender, "code": exc.code, "reason": exc.message, "step": "sealing-key"})
            raise

    def _issue(self, org_id: str, sender: str, transfer: str) -> dict[str, Any]:
        node = self.node
        existing = self.find(org_id, transfer)
        if existing is not None:
            if existing.sender != sender:
                raise NotFound(f"{org_id} has no transfer {transfer} from {sender}.")
            return existing.document
        with node.db.engine.connect() as conn:
            begun = conn.execute(select(t.inbound.c.sender).where(
                t.inbound.c.org_id == org_id, t.inbound.c.transfer_id == transfer)).first()
        if begun is not None:
            raise Conflict(f"Transfer {transfer} has begun already: its payload is sealed.")
        self._tidy(org_id, sender)
        if self._open(org_id, sender) >= MAX_OPEN:
            raise Conflict(f"{sender} holds {MAX_OPEN} sealing keys from {org_id} that no transfer has used yet; "
                           "send those transfers first.")
        dek = new_document_key()
        key_id, holding_id = new_id("k", node.rng), new_id("h", node.rng)
        recipient = document_recipient(dek)
        signing_id, _public = node.keys.signing_key(org_id)
        store = node.keystore(org_id)
        # Signed documents state times to the second.
        made = SealingKey(transfer, sender, org_id, recipient, node.clock().replace(microsecond=0))
        document = sign_sealing_key(made, signing_id, lambda data: store.sign(signing_id, data))
        try:
            with node.db.engine.begin() as conn:
                node.keys.add_data_key(conn, org_id, holding_id, DOCUMENT, store, key_id, dek)
                conn.execute(insert(t.sealing_keys).values(
                    org_id=org_id, transfer_id=transfer, sender=sender, key_id=key_id, holding_id=holding_id,
                    age_recipient=recipient, document=canonical_json(document).decode("utf-8"),
                    created_at=node.clock()))
        except SAIntegrityError:
            # Asked twice at the same moment: the first answer stands.
            again = self.find(org_id, transfer)
            if again is None or again.sender != sender:
                raise NotFound(f"{org_id} has no transfer {transfer} from {sender}.") from None
            return again.document
        node.audit.append(org_id, RECEIVER, "key.create", key_id, details={
            "purpose": "data", "holding": holding_id, "custody": "wrapped", "sealing_key_for": transfer,
            "sender": sender})
        return document

    def unwrap(self, reservation: Reservation) -> bytes:
        """The reserved data key (logged as key.unwrap); IntegrityError if it was destroyed."""
        node = self.node
        key = node.keys.unwrap_data_key(reservation.org_id, reservation.key_id, node.keystore(reservation.org_id))
        if key is None:
            raise IntegrityError(f"The sealing key of transfer {reservation.transfer} was destroyed; the sender must "
                                 "share the holding again.")
        node.audit.append(reservation.org_id, RECEIVER, "key.unwrap", reservation.key_id,
                          details={"holding": reservation.holding_id, "transfer": reservation.transfer})
        return key

    def discard(self, org_id: str, transfer: str) -> None:
        """Destroy the sealing key of a transfer refused for good, unless a holding uses it."""
        reservation = self.find(org_id, transfer)
        if reservation is not None:
            self._destroy([reservation])

    def _destroy(self, reservations: list[Reservation]) -> None:
        node = self.node
        for r in reservations:
            with node.db.engine.begin() as conn:
                used = conn.execute(select(t.holdings.c.id).where(t.holdings.c.id == r.holding_id)).first()
                if used is None:
                    node.keys.destroy_data_key(conn, r.org_id, r.key_id)
                conn.execute(delete(t.sealing_keys).where(t.sealing_keys.c.org_id == r.org_id,
                                                          t.sealing_keys.c.transfer_id == r.transfer))
            if used is None:
                node.audit.append(r.org_id, RECEIVER, "key.destroy", r.key_id, details={
                    "holding": r.holding_id, "sealing_key_for": r.transfer, "reason": "not used"})

    def _unused(self, org_id: str, sender: str) -> Any:
        """Sealing keys of ``sender`` whose transfer has not begun (no manifest has arrived)."""
        s, i = t.sealing_keys, t.inbound
        begun = select(i.c.transfer_id).where(i.c.org_id == s.c.org_id, i.c.transfer_id == s.c.transfer_id)
        return s.c.org_id == org_id, s.c.sender == sender, ~begun.exists()

    def _open(self, org_id: str, sender: str) -> int:
        with self.node.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.sealing_keys)
                                    .where(*self._unused(org_id, sender))).scalar_one())

    def _tidy(self, org_id: str, sender: str) -> None:
        """Destroy this sender's sealing keys that no manifest used within UNUSED_FOR."""
        cutoff = self.node.clock() - UNUSED_FOR
        with self.node.db.engine.connect() as conn:
            rows = conn.execute(select(t.sealing_keys).where(
                *self._unused(org_id, sender), t.sealing_keys.c.created_at < cutoff)).all()
        self._destroy([_reservation(r) for r in rows])


def _reservation(row: Any) -> Reservation:
    return Reservation(row.org_id, row.transfer_id, row.sender, row.key_id, row.holding_id, row.age_recipient,
                       parse_json(row.document.encode("utf-8")))

