"""The deletion certificate: the recipient's signed word that a holding it received was destroyed
(signed document kind ``deletion-certificate``).

When retention ends, or the agreement a holding arrived under stops, the recipient crypto-shreds the
holding and sends the provider this certificate. It names the transfer, both organisations, the
provider's holding and the hashes of what was sent (from the manifest), the agreement it was shared
under, the reason and the moment of deletion. The provider verifies it with the recipient's signing
key and checks it against the manifest it signed itself, so a certificate can only ever speak of a
transfer that really went to that recipient.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from civicshare.errors import InvalidInput, Problem, SecurityError, UsageError
from civicshare.exchange.fields import (
    Checker,
    doc_time,
    holding_id,
    org_id,
    parse_time,
    read_document,
    sha256_hex,
    text_line,
    transfer_id,
)
from civicshare.exchange.manifest import AGREEMENT_RE, MAX_AGREEMENT_VERSION, AgreementRef, Manifest
from civicshare.exchange.signed import Signer, document_body, sign_document, verify_document

DELETION_CERTIFICATE = "deletion-certificate"
CERTIFICATE_VERSION = 1
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_REASON = 500
_FIELDS = ("version", "transfer", "provider", "recipient", "holding", "plaintext_sha256", "ciphertext_sha256",
           "agreement", "reason", "deleted")
_AGREEMENT_FIELDS = ("id", "version", "sha256")


@dataclass(frozen=True)
class DeletionCertificate:
    transfer: str
    provider: str
    recipient: str
    # The provider's holding id, as the manifest names it: what the provider looks it up by.
    holding: str
    plaintext_sha256: str
    ciphertext_sha256: str
    agreement: AgreementRef
    reason: str
    deleted: datetime

    def to_body(self) -> dict[str, Any]:
        return {
            "version": CERTIFICATE_VERSION, "transfer": self.transfer, "provider": self.provider,
            "recipient": self.recipient, "holding": self.holding, "plaintext_sha256": self.plaintext_sha256,
            "ciphertext_sha256": self.ciphertext_sha256, "agreement": self.agreement.to_body(),
            "reason": self.reason, "deleted": doc_time(self.deleted),
        }

    @classmethod
    def from_body(cls, body: object) -> DeletionCertificate:
        """Check every field; InvalidInput lists each fault with its field path."""
        if not isinstance(body, dict):
            raise InvalidInput("The body of a deletion certificate is a JSON object.")
        check = Checker()
        check.fields(body, _FIELDS, "", "deletion certificate")
        version = body.get("version")
        if "version" in body and (type(version) is not int or version != CERTIFICATE_VERSION):
            check.add(f"is {version!r}; this node reads version {CERTIFICATE_VERSION} deletion certificates",
                      "version")
        transfer = check.field(body, "transfer", transfer_id)
        provider = check.field(body, "provider", org_id)
        recipient = check.field(body, "recipient", org_id)
        holding = check.field(body, "holding", holding_id)
        plaintext = check.field(body, "plaintext_sha256", sha256_hex)
        ciphertext = check.field(body, "ciphertext_sha256", sha256_hex)
        agreement = _agreement(check, body.get("agreement")) if "agreement" in body else None
        reason = check.field(body, "reason", lambda v: text_line(v, MAX_REASON))
        deleted = check.field(body, "deleted", parse_time)
        if not check.problems and provider == recipient:
            check.add("names the provider as its own recipient", "recipient")
        check.raise_if_any("This is not a valid civicshare deletion certificate")
        assert agreement is not None
        return cls(transfer, provider, recipient, holding, plaintext, ciphertext, agreement, reason, deleted)


def _agreement(check: Checker, value: object) -> AgreementRef | None:
    if not isinstance(value, dict):
        check.add("must be an object with the agreement's id, version and sha256", "agreement")
        return None
    before = len(check.problems)
    check.fields(value, _AGREEMENT_FIELDS, "agreement.", "agreement reference")
    ident = check.field(value, "id", _agreement_id, "agreement.")
    version = check.field(value, "version", _agreement_version, "agreement.")
    digest = check.field(value, "sha256", sha256_hex, "agreement.")
    if len(check.problems) > before:
        return None
    return AgreementRef(ident, version, digest)


def _agreement_id(value: object) -> str:
    if not isinstance(value, str) or not AGREEMENT_RE.fullmatch(value):
        raise InvalidInput("must be the id of a data sharing agreement")
    return value


def _agreement_version(value: object) -> int:
    # bool is an int to Python, but not a version number.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_AGREEMENT_VERSION:
        raise InvalidInput("must be the agreement's version number, a whole number from 1")
    return value


# Signing and reading -------------------------------------------------------------------------------


def make_certificate(certificate: DeletionCertificate, key_id_hint: str, sign: Signer) -> dict[str, Any]:
    """The signed certificate document; the body is checked to read back before it is signed."""
    body = certificate.to_body()
    if DeletionCertificate.from_body(body) != certificate:
        raise UsageError("This deletion certificate does not survive being written out; it was built wrongly.")
    return sign_document(DELETION_CERTIFICATE, body, key_id_hint, sign)


def peek_certificate(data: str | bytes | dict[str, Any]) -> DeletionCertificate:
    """The certificate as it claims to be, WITHOUT checking its signature: only to find whose key
    verifies it. Never act on anything else it says."""
    document = read_document(data, DELETION_CERTIFICATE, MAX_CERTIFICATE_BYTES)
    return DeletionCertificate.from_body(document_body(DELETION_CERTIFICATE, document))


def verify_certificate(data: str | bytes | dict[str, Any], *,
                       recipient_key: bytes) -> tuple[DeletionCertificate, dict[str, Any]]:
    """Read a signed certificate and verify it with the recipient's Ed25519 key; it and its document.

    TooLarge or InvalidInput when malformed; SecurityError when the signature does not verify.
    """
    document = read_document(data, DELETION_CERTIFICATE, MAX_CERTIFICATE_BYTES)
    certificate = DeletionCertificate.from_body(document_body(DELETION_CERTIFICATE, document))
    verify_document(DELETION_CERTIFICATE, document, recipient_key)
    return certificate, document


def check_certificate(certificate: DeletionCertificate, manifest: Manifest) -> None:
    """Raise SecurityError naming every way ``certificate`` does not speak of exactly this transfer.

    A certificate for another transfer, holding, payload or agreement is not evidence that what was
    sent here was destroyed, so the provider refuses it rather than record a deletion it cannot prove.
    """
    problems: list[Problem] = []

    def differs(field: str, got: object, expected: object) -> None:
        if got != expected:
            problems.append(Problem(f"is {got!r} but the manifest says {expected!r}", field=field))

    differs("transfer", certificate.transfer, manifest.transfer)
    differs("provider", certificate.provider, manifest.sender)
    differs("recipient", certificate.recipient, manifest.recipient)
    differs("holding", certificate.holding, manifest.holding.id)
    for name, want in (("plaintext_sha256", manifest.plaintext.sha256),
                       ("ciphertext_sha256", manifest.ciphertext.sha256)):
        if not hmac.compare_digest(getattr(certificate, name), want):
            problems.append(Problem("does not match the manifest", field=name))
    agreed = manifest.agreement
    if certificate.agreement != agreed:
        problems.append(Problem(f"is {certificate.agreement.id} version {certificate.agreement.version} "
                                f"({certificate.agreement.sha256[:12]}...), but the transfer was sent under "
                                f"{agreed.id} version {agreed.version} ({agreed.sha256[:12]}...)",
                                field="agreement"))
    if problems:
        raise SecurityError(f"The deletion certificate for transfer {manifest.transfer} does not match what was "
                            "sent", problems=problems)
