"""The receipt: the recipient's signed word that a transfer arrived intact (signed document kind ``receipt``).

It quotes the hash of the signed manifest it answers, repeats the sizes and hashes it checked, names
the new holding, and carries the recipient's signed audit checkpoint taken after it logged the
arrival, so the sender can later prove the recipient's log recorded it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from civicshare.errors import IntegrityError, InvalidInput, Problem, UsageError
from civicshare.exchange.fields import (
    Checker,
    Digest,
    doc_time,
    holding_id,
    org_id,
    parse_time,
    read_document,
    sha256_hex,
    transfer_id,
)
from civicshare.exchange.manifest import Manifest, manifest_sha256
from civicshare.exchange.signed import Signer, document_body, sign_document, verify_document

RECEIPT = "receipt"
MAX_CHECKPOINT_CHARS = 16 * 1024
MAX_RECEIPT_BYTES = 64 * 1024
_FIELDS = ("transfer", "sender", "recipient", "manifest_sha256", "plaintext", "ciphertext", "holding", "received",
           "checkpoint")


@dataclass(frozen=True)
class Receipt:
    transfer: str
    sender: str
    recipient: str
    manifest_sha256: str
    plaintext: Digest
    ciphertext: Digest
    holding: str
    received: datetime
    checkpoint: str

    def to_body(self) -> dict[str, Any]:
        return {
            "transfer": self.transfer, "sender": self.sender, "recipient": self.recipient,
            "manifest_sha256": self.manifest_sha256, "plaintext": self.plaintext.to_body(),
            "ciphertext": self.ciphertext.to_body(), "holding": self.holding,
            "received": doc_time(self.received), "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_body(cls, body: object) -> Receipt:
        """Check every field; InvalidInput lists each fault with its field path."""
        if not isinstance(body, dict):
            raise InvalidInput("The body of a receipt is a JSON object.")
        check = Checker()
        check.fields(body, _FIELDS, "", "receipt")
        transfer = check.field(body, "transfer", transfer_id)
        sender = check.field(body, "sender", org_id)
        recipient = check.field(body, "recipient", org_id)
        digest = check.field(body, "manifest_sha256", sha256_hex)
        plaintext = check.digest(body.get("plaintext"), "plaintext", extra=())
        ciphertext = check.digest(body.get("ciphertext"), "ciphertext", extra=())
        holding = check.field(body, "holding", holding_id)
        received = check.field(body, "received", parse_time)
        checkpoint = check.field(body, "checkpoint", _checkpoint)
        if not check.problems and sender == recipient:
            check.add("names the sender as its own recipient", "recipient")
        check.raise_if_any("This receipt is not a valid civicshare receipt")
        return cls(transfer, sender, recipient, digest, plaintext, ciphertext, holding, received, checkpoint)


def _checkpoint(value: object) -> str:
    # The note is verified by the sender with the recipient's audit key; here only its shape.
    if not isinstance(value, str) or not value.strip() or not value.endswith("\n"):
        raise InvalidInput("must be the recipient's signed checkpoint note (text ending in a newline)")
    if len(value) > MAX_CHECKPOINT_CHARS or "\x00" in value:
        raise InvalidInput(f"must be a checkpoint note of at most {MAX_CHECKPOINT_CHARS} characters")
    return value


def sign_receipt(receipt: Receipt, key_id_hint: str, sign: Signer) -> dict[str, Any]:
    """The signed receipt document; the body is checked to read back before it is signed."""
    body = receipt.to_body()
    if Receipt.from_body(body) != receipt:
        raise UsageError("This receipt does not survive being written out; it was built wrongly.")
    return sign_document(RECEIPT, body, key_id_hint, sign)


def peek_receipt(data: str | bytes | dict[str, Any]) -> Receipt:
    """The receipt as it claims to be, WITHOUT checking its signature: only to find the transfer and
    the recipient whose key verifies it. Never act on anything else it says."""
    return Receipt.from_body(document_body(RECEIPT, read_document(data, RECEIPT, MAX_RECEIPT_BYTES)))


def parse_receipt(data: str | bytes | dict[str, Any], *, recipient_key: bytes) -> tuple[Receipt, dict[str, Any]]:
    """Read a signed receipt and verify it with the recipient's Ed25519 key; returns it and its document.

    TooLarge or InvalidInput when malformed; SecurityError when the signature does not verify.
    """
    document = read_document(data, RECEIPT, MAX_RECEIPT_BYTES)
    receipt = Receipt.from_body(document_body(RECEIPT, document))
    verify_document(RECEIPT, document, recipient_key)
    return receipt, document


def check_receipt(receipt: Receipt, manifest: Manifest, manifest_document: dict[str, Any]) -> None:
    """Raise IntegrityError naming every way ``receipt`` does not answer exactly this manifest."""
    if document_body("manifest", manifest_document) != manifest.to_body():
        raise UsageError("The manifest document given is not the manifest given.")
    problems: list[Problem] = []

    def differs(field: str, got: object, expected: object) -> None:
        if got != expected:
            problems.append(Problem(f"is {got!r} but the manifest says {expected!r}", field=field))

    differs("transfer", receipt.transfer, manifest.transfer)
    differs("sender", receipt.sender, manifest.sender)
    differs("recipient", receipt.recipient, manifest.recipient)
    expected = manifest_sha256(manifest_document)
    if not hmac.compare_digest(receipt.manifest_sha256, expected):
        problems.append(Problem("does not match the manifest this transfer was sent with", field="manifest_sha256"))
    for name in ("plaintext", "ciphertext"):
        got, want = getattr(receipt, name), getattr(manifest, name)
        differs(f"{name}.size", got.size, want.size)
        if not hmac.compare_digest(got.sha256, want.sha256):
            problems.append(Problem("does not match the manifest", field=f"{name}.sha256"))
    if problems:
        raise IntegrityError(f"The receipt for transfer {manifest.transfer} does not match what was sent",
                             problems=problems)
