"""Transfers: the sender's ledger, the recipient's inbox, and the ``Exchange`` that ties them together.

A transfer is one holding sent to one partner. The sender seals it, signs a manifest and records it
in its outbox (``transfers``) before anything leaves; the delivery worker then sends it, or it is
written to a package for the offline route. The recipient records it in its inbox (``inbound``),
stores the parts, and on commit opens it into a new holding and answers with a signed receipt.
The database rows are the truth on both sides, so every step can be repeated after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicshare.access import Actor
from civicshare.canonical import parse_json
from civicshare.clock import iso, system_clock, utc
from civicshare.errors import StillPending
from civicshare.exchange.manifest import Manifest, manifest_sha256, peek_manifest
from civicshare.exchange.quality_summary import readable

if TYPE_CHECKING:
    from civicshare.exchange.client import PartnerClient
    from civicshare.exchange.delivery import DeliveryWorker
    from civicshare.node import Node

VERSION = 1
RECEIVER = "receiver"  # the inbox's operator name in the audit log
# Sender's states.
QUEUED, SENDING, DELIVERED, FAILED, EXPORTED = "queued", "sending", "delivered", "failed", "exported"
# Recipient's states (``delivered`` is shared).
RECEIVING, REFUSED = "receiving", "refused"
NETWORK, OFFLINE = "network", "offline"
SENDER_STATES = (QUEUED, SENDING, DELIVERED, FAILED, EXPORTED)
# Deletion of a delivered holding at the recipient, as each side's ledger shows it.
DELETION_VERIFIED, DELETION_DUE, DELETION_OVERDUE, DELETION_DONE = "verified", "due", "overdue", "deleted"
# A deletion certificate may take this long after the deletion is due before the provider flags it.
DELETION_GRACE = timedelta(days=1)
FINAL_POLL = 0.02  # seconds between looks at a transfer whose parts have all arrived (share --wait)


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _day(moment: datetime) -> str:
    return utc(moment).date().isoformat()


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    """What a person needs to know of a manifest: the holding, sizes and hashes, the parts."""
    return {
        "holding": manifest.holding.to_body(), "agreement": manifest.agreement.to_body(),
        "created": iso(manifest.created), "plaintext": manifest.plaintext.to_body(),
        "ciphertext": manifest.ciphertext.to_body(), "age_recipient": manifest.age_recipient,
        "part_size": manifest.part_size, "parts": manifest.part_count,
    }


def _document(text: str) -> dict[str, Any]:
    """A signed document this node stored itself (after checking it), read back from the ledger."""
    document = parse_json(text)
    assert isinstance(document, dict)
    return document


@dataclass(frozen=True)
class Transfer:
    """One row of the sender's ledger."""

    id: str
    org_id: str
    holding_id: str
    recipient: str
    agreement: str | None
    route: str
    state: str
    manifest_text: str
    payload: str | None
    size: int
    bytes_sent: int
    attempts: int
    last_error: str | None
    failed_reason: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    delivered_at: datetime | None
    receipt_text: str | None
    agreement_version: int | None = None
    agreement_hash: str | None = None
    # When the recipient must have deleted its copy, and its deletion certificate once verified.
    deletion_due_at: datetime | None = None
    deletion_certificate_text: str | None = None
    deletion_verified_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Transfer:
        return cls(row.id, row.org_id, row.holding_id, row.recipient, row.agreement_id, row.route, row.state,
                   row.manifest, row.payload, row.size, row.bytes_sent, row.attempts, row.last_error,
                   row.failed_reason, _time(row.next_attempt_at), utc(row.created_at), row.created_by,
                   utc(row.updated_at), _time(row.delivered_at), row.receipt, row.agreement_version,
                   row.agreement_hash, _time(row.deletion_due_at), row.deletion_certificate,
                   _time(row.deletion_verified_at))

    @property
    def manifest_document(self) -> dict[str, Any]:
        return _document(self.manifest_text)

    @property
    def manifest(self) -> Manifest:
        # Our own signed manifest, from our own database: no need to verify our signature again.
        return peek_manifest(self.manifest_text)

    @property
    def receipt(self) -> dict[str, Any] | None:
        return None if self.receipt_text is None else _document(self.receipt_text)

    def payload_path(self, home: Path) -> Path | None:
        return None if self.payload is None else home / self.payload

    @property
    def deletion_certificate(self) -> dict[str, Any] | None:
        # Only ever stored after it verified (signature, transfer, hashes and agreement).
        return None if self.deletion_certificate_text is None else _document(self.deletion_certificate_text)

    def deletion_state(self, now: datetime) -> str | None:
        """verified, due or overdue (``DELETION_GRACE`` after it was due); None when nothing is due."""
        if self.deletion_verified_at is not None:
            return DELETION_VERIFIED
        if self.deletion_due_at is None:
            return None
        return DELETION_OVERDUE if now > self.deletion_due_at + DELETION_GRACE else DELETION_DUE

    def deletion_json(self, now: datetime) -> dict[str, Any] | None:
        """The recipient's deletion of its copy, as the provider knows it, with plain words."""
        state = self.deletion_state(now)
        if state is None:
            return None
        if state == DELETION_VERIFIED:
            words = "deleted at recipient, certificate verified"
        elif state == DELETION_OVERDUE:
            assert self.deletion_due_at is not None
            words = f"overdue since {_day(self.deletion_due_at + DELETION_GRACE)} (no deletion certificate)"
        else:
            assert self.deletion_due_at is not None
            words = f"due on {_day(self.deletion_due_at)}"
        return {"state": state, "due": iso(self.deletion_due_at), "certificate": self.deletion_certificate,
                "verified_at": iso(self.deletion_verified_at), "words": words}

    def to_json(self, *, detail: bool = False, now: datetime | None = None) -> dict[str, Any]:
        """The ledger entry. Field names are stable: scripts and the fault tests read them.

        ``now`` is the moment an overdue deletion is judged at: pass the node's clock.
        """
        data: dict[str, Any] = {
            "version": VERSION, "id": self.id, "organisation": self.org_id, "holding": self.holding_id,
            "recipient": self.recipient, "agreement": self.agreement, "route": self.route, "state": self.state,
            "bytes_sent": self.bytes_sent, "size": self.size, "attempts": self.attempts,
            "last_error": self.last_error, "failed_reason": self.failed_reason,
            "next_attempt": iso(self.next_attempt_at), "created": iso(self.created_at),
            "created_by": self.created_by, "updated": iso(self.updated_at), "delivered": iso(self.delivered_at),
            "deletion": self.deletion_json(now or system_clock()),
        }
        if detail:
            data["manifest"] = manifest_summary(self.manifest)
            data["manifest_sha256"] = manifest_sha256(self.manifest_document)
            # A receipt is only ever stored after it verified (signature, hashes and checkpoint).
            data["receipt"] = self.receipt
            data["receipt_verified"] = self.receipt is not None
        return data


@dataclass(frozen=True)
class InboundTransfer:
    """One row of the recipient's inbox."""

    org_id: str
    transfer_id: str
    sender: str
    route: str
    state: str
    manifest_text: str
    bytes_received: int
    holding_id: str | None
    receipt_text: str | None
    refused_reason: str | None
    created_at: datetime
    completed_at: datetime | None
    agreement_id: str | None = None
    agreement_version: int | None = None
    agreement_hash: str | None = None
    # How long the holding may be kept (None: until the agreement ends), and its deletion once done.
    retain_until: datetime | None = None
    deleted_at: datetime | None = None
    deletion_reason: str | None = None
    certificate_text: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> InboundTransfer:
        return cls(row.org_id, row.transfer_id, row.sender, row.route, row.state, row.manifest,
                   row.bytes_received, row.holding_id, row.receipt, row.refused_reason, utc(row.created_at),
                   _time(row.completed_at), row.agreement_id, row.agreement_version, row.agreement_hash,
                   _time(row.retain_until), _time(row.deleted_at), row.deletion_reason, row.certificate)

    @property
    def manifest_document(self) -> dict[str, Any]:
        return _document(self.manifest_text)

    @property
    def manifest(self) -> Manifest:
        # Verified with the sender's key before the row was written.
        return peek_manifest(self.manifest_text)

    @property
    def receipt(self) -> dict[str, Any] | None:
        return None if self.receipt_text is None else _document(self.receipt_text)

    @property
    def certificate(self) -> dict[str, Any] | None:
        """The deletion certificate this organisation signed for the sender, once the holding is deleted."""
        return None if self.certificate_text is None else _document(self.certificate_text)

    def deletion_json(self) -> dict[str, Any] | None:
        """Until when the holding is kept, or its deletion; None when it arrived under no agreement."""
        if self.deleted_at is not None:
            return {"state": DELETION_DONE, "due": iso(self.retain_until), "certificate": self.certificate,
                    "verified_at": None, "words": f"deleted on {_day(self.deleted_at)}: {self.deletion_reason}"}
        if self.state != DELIVERED or self.agreement_id is None:
            return None
        words = (f"kept until {_day(self.retain_until)}" if self.retain_until is not None
                 else f"kept until agreement {self.agreement_id} ends")
        return {"state": DELETION_DUE, "due": iso(self.retain_until), "certificate": None, "verified_at": None,
                "words": words}

    def to_json(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "version": VERSION, "organisation": self.org_id, "transfer": self.transfer_id, "sender": self.sender,
            "route": self.route, "state": self.state, "holding": self.holding_id, "kind": manifest.holding.kind,
            "name": manifest.holding.name, "size": manifest.plaintext.size, "rows": manifest.holding.rows,
            # The sender's quality summary, to be seen before the data is used (None: documents, or none stated).
            "quality_score": manifest.holding.quality_score, "quality": readable(manifest.holding.quality),
            "bytes_received": self.bytes_received, "refused_reason": self.refused_reason,
            "received": iso(self.created_at), "completed": iso(self.completed_at),
            "deletion": self.deletion_json(),
        }


def next_look(size: int, acknowledged: int, poll: float) -> float:
    """Seconds until ``share --wait`` looks again at a transfer of ``size`` bytes, ``acknowledged`` so far:
    ``poll``, or FINAL_POLL once every part is acknowledged, when only the commit and the receipt
    remain (a fraction of a second), so the answer comes as soon as the receipt is verified."""
    return min(poll, FINAL_POLL) if 0 < size <= acknowledged else poll


class Exchange:
    """Sharing holdings between organisations: the outbox, the inbox and the delivery worker."""

    def __init__(self, node: Node) -> None:
        from civicshare.exchange.inbox import Inbox
        from civicshare.exchange.outbox import Outbox

        self.node = node
        self.outbox = Outbox(node)
        self.inbox = Inbox(node)

    def share(self, actor: Actor, holding_id: str, to: str, *, agreement: str | None = None,
              out: Path | None = None, partners: PartnerClient | None = None) -> Transfer:
        """Seal a holding to partner ``to`` and put it in the outbox (or, with ``out``, in a package);
        ``partners``: ask the partner for a sealing key first (see ``Outbox.share``)."""
        return self.outbox.share(actor, holding_id, to, agreement=agreement, out=out, partners=partners)

    def transfers(self, actor: Actor) -> list[Transfer]:
        return self.outbox.entries(actor)

    def transfer(self, actor: Actor, transfer_id: str) -> Transfer:
        return self.outbox.get(actor, transfer_id)

    def wait(self, actor: Actor, transfer_id: str, *, timeout: float,
             on_change: Callable[[Transfer], None] | None = None, poll: float = 0.2) -> Transfer:
        """Follow the ledger until the transfer is delivered or failed (delivery runs in ``serve``).

        ``on_change`` sees the transfer whenever its state, bytes, attempts or last error change.
        StillPending once ``timeout`` seconds have passed; the transfer itself goes on.
        """
        deadline = time.monotonic() + timeout
        seen: tuple[Any, ...] | None = None
        while True:
            transfer = self.transfer(actor, transfer_id)
            now = (transfer.state, transfer.bytes_sent, transfer.attempts, transfer.last_error)
            if on_change is not None and now != seen:
                on_change(transfer)
            seen = now
            if transfer.state in (DELIVERED, FAILED):
                return transfer
            if time.monotonic() >= deadline:
                raise StillPending(
                    f"Transfer {transfer_id} is still {transfer.state}: gave up waiting after {timeout:g} seconds. "
                    f"'civicshare serve' goes on delivering it; follow it with 'civicshare transfers show "
                    f"{transfer_id}'.")
            time.sleep(next_look(transfer.size, transfer.bytes_sent, poll))

    def inbound(self, actor: Actor) -> list[InboundTransfer]:
        return self.inbox.entries(actor)

    def receive(self, actor: Actor, path: Path, *, receipt_out: Path | None = None) -> dict[str, Any]:
        """Import an offline package (answering with a receipt file) or take a receipt carried back."""
        from civicshare.exchange.package import package_kind

        if package_kind(path) == "receipt":
            transfer = self.outbox.accept_receipt(actor, path)
            return {"version": VERSION, "kind": "receipt", "transfer": transfer.id, "state": transfer.state,
                    "recipient": transfer.recipient}
        return self.inbox.import_package(actor, path, receipt_out=receipt_out)

    def worker(self, *, retry_base: float = 2.0, **client_options: Any) -> DeliveryWorker:
        from civicshare.exchange.delivery import DeliveryWorker

        return DeliveryWorker(self.node, retry_base=retry_base, client_options=client_options)
