"""The signed documents an agreement's parties send each other: proposal, signature, revocation.

Each is a version 1 signed document (civicshare.exchange.signed) made with the sending
organisation's signing key:

- ``agreement-proposal``: the whole agreement and its hash, from the party that proposes it;
- ``agreement-signature``: one party's signature over a version's hash, naming the data protection
  officer who signed for it;
- ``agreement-revocation``: one party ending a version, with the reason.

Reading checks the signature first (with the key the caller trusts for the claimed signer), then
every field, and for a proposal that the agreement it carries still has the hash it names: an
agreement changed after it was proposed is refused, however it was re-signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from civicshare.agreements.model import MAX_AGREEMENT_BYTES, Agreement
from civicshare.agreements.validate import check_agreement
from civicshare.errors import CivicshareError, InvalidInput, SecurityError
from civicshare.exchange.fields import Checker, doc_time, org_id, parse_time, read_document, sha256_hex, text_line
from civicshare.exchange.signed import document_body, sign_document, verify_document

PROPOSAL, SIGNATURE, REVOCATION = "agreement-proposal", "agreement-signature", "agreement-revocation"
BODY_VERSION = 1
DPO_ROLE = "dpo"
MAX_DOCUMENT_BYTES = MAX_AGREEMENT_BYTES + 16 * 1024
MAX_NAME = 200
MAX_REASON = 1000

_PROPOSAL_FIELDS = ("version", "agreement", "hash", "proposer", "proposed")
_SIGNATURE_FIELDS = ("version", "agreement", "agreement_version", "hash", "party", "signed_by", "role", "signed")
_REVOCATION_FIELDS = ("version", "agreement", "agreement_version", "hash", "party", "revoked_by", "reason",
                      "revoked")
# Who signs each kind: the field naming the organisation whose key must verify it.
SIGNER_FIELD = {PROPOSAL: "proposer", SIGNATURE: "party", REVOCATION: "party"}

Sign = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Proposal:
    agreement: Agreement
    hash: str
    proposer: str
    proposed: datetime
    document: dict[str, Any]


@dataclass(frozen=True)
class Signature:
    agreement_id: str
    agreement_version: int
    hash: str
    party: str
    signed_by: str
    signed: datetime
    document: dict[str, Any]


@dataclass(frozen=True)
class Revocation:
    agreement_id: str
    agreement_version: int
    hash: str
    party: str
    revoked_by: str
    reason: str
    revoked: datetime
    document: dict[str, Any]


# Making --------------------------------------------------------------------------------------------


def make_proposal(agreement: Agreement, proposer: str, proposed: datetime, key_id: str, sign: Sign) -> dict[str, Any]:
    body = {"version": BODY_VERSION, "agreement": agreement.to_body(), "hash": agreement.agreement_hash,
            "proposer": proposer, "proposed": doc_time(proposed)}
    return sign_document(PROPOSAL, body, key_id, sign)


def make_signature(agreement: Agreement, party: str, signed_by: str, signed: datetime, key_id: str,
                   sign: Sign) -> dict[str, Any]:
    body = {"version": BODY_VERSION, "agreement": agreement.id, "agreement_version": agreement.agreement_version,
            "hash": agreement.agreement_hash, "party": party, "signed_by": signed_by, "role": DPO_ROLE,
            "signed": doc_time(signed)}
    return sign_document(SIGNATURE, body, key_id, sign)


def make_revocation(agreement: Agreement, party: str, revoked_by: str, reason: str, revoked: datetime,
                    key_id: str, sign: Sign) -> dict[str, Any]:
    body = {"version": BODY_VERSION, "agreement": agreement.id, "agreement_version": agreement.agreement_version,
            "hash": agreement.agreement_hash, "party": party, "revoked_by": revoked_by, "reason": reason,
            "revoked": doc_time(revoked)}
    return sign_document(REVOCATION, body, key_id, sign)


# Reading -------------------------------------------------------------------------------------------


def claimed_signer(kind: str, document: object) -> str:
    """The organisation a document says signed it (unverified: only to choose the key to verify with)."""
    body = document_body(kind, _read(kind, document))
    return org_id_field(body.get(SIGNER_FIELD[kind]), f"body.{SIGNER_FIELD[kind]}")


def _read(kind: str, document: object) -> dict[str, Any]:
    if not isinstance(document, dict | str | bytes):
        raise InvalidInput(f"A signed {kind} is a JSON object.")
    return read_document(document, kind, MAX_DOCUMENT_BYTES)


def org_id_field(value: object, path: str) -> str:
    try:
        return org_id(value)
    except InvalidInput as exc:
        raise InvalidInput(f"This document's {path} {exc.message}.") from None


def _verified(kind: str, document: object, public_key: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = _read(kind, document)
    body = verify_document(kind, doc, public_key)
    version = body.get("version")
    if type(version) is not int or version != BODY_VERSION:
        raise InvalidInput(f"This {kind} has body version {version!r}; this node reads version {BODY_VERSION}.")
    return doc, body


def _agreement_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput("must be an agreement id such as DSA-2026-0001")
    return value


def _agreement_version(value: object) -> int:
    if type(value) is not int or value < 1:
        raise InvalidInput("must be a whole number, 1 or more")
    return value


def read_proposal(document: object, public_key: bytes) -> Proposal:
    """A proposal signed with ``public_key`` whose agreement still has the hash it names.

    SecurityError when the signature does not verify, or the agreement was changed after it was proposed.
    """
    doc, body = _verified(PROPOSAL, document, public_key)
    check = Checker()
    check.fields(body, _PROPOSAL_FIELDS, "body.", PROPOSAL)
    claimed = check.field(body, "hash", sha256_hex, "body.")
    proposer = check.field(body, "proposer", org_id, "body.")
    proposed = check.field(body, "proposed", parse_time, "body.")
    check.raise_if_any(f"This {PROPOSAL} is not valid")
    try:
        agreement = check_agreement(body.get("agreement"))
    except CivicshareError as exc:
        raise InvalidInput(f"The agreement in this proposal is not valid: {exc.message}",
                           problems=exc.problems) from None
    if agreement.id is None or agreement.agreement_version is None:
        raise InvalidInput("The agreement in this proposal has no id or version number; only a numbered agreement "
                           "from a register can be proposed.")
    if agreement.agreement_hash != claimed:
        raise SecurityError(f"The agreement in this proposal of {agreement.id} does not match the hash it names "
                            f"({claimed[:12]}...): it was changed after it was proposed.")
    return Proposal(agreement, claimed, proposer, proposed, doc)


def read_signature(document: object, public_key: bytes) -> Signature:
    doc, body = _verified(SIGNATURE, document, public_key)
    check = Checker()
    check.fields(body, _SIGNATURE_FIELDS, "body.", SIGNATURE)
    agreement_id = check.field(body, "agreement", _agreement_id, "body.")
    version = check.field(body, "agreement_version", _agreement_version, "body.")
    digest = check.field(body, "hash", sha256_hex, "body.")
    party = check.field(body, "party", org_id, "body.")
    signed_by = check.field(body, "signed_by", lambda v: text_line(v, MAX_NAME), "body.")
    signed = check.field(body, "signed", parse_time, "body.")
    if "role" in body and body["role"] != DPO_ROLE:
        check.add(f"must be {DPO_ROLE!r}: only a data protection officer signs an agreement", "body.role")
    check.raise_if_any(f"This {SIGNATURE} is not valid")
    return Signature(agreement_id, version, digest, party, signed_by, signed, doc)


def read_revocation(document: object, public_key: bytes) -> Revocation:
    doc, body = _verified(REVOCATION, document, public_key)
    check = Checker()
    check.fields(body, _REVOCATION_FIELDS, "body.", REVOCATION)
    agreement_id = check.field(body, "agreement", _agreement_id, "body.")
    version = check.field(body, "agreement_version", _agreement_version, "body.")
    digest = check.field(body, "hash", sha256_hex, "body.")
    party = check.field(body, "party", org_id, "body.")
    revoked_by = check.field(body, "revoked_by", lambda v: text_line(v, MAX_NAME), "body.")
    reason = check.field(body, "reason", lambda v: text_line(v, MAX_REASON), "body.")
    revoked = check.field(body, "revoked", parse_time, "body.")
    check.raise_if_any(f"This {REVOCATION} is not valid")
    return Revocation(agreement_id, version, digest, party, revoked_by, reason, revoked, doc)
