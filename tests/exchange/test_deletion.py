"""Deletion certificates: a known-answer signature, every field checked, tampering and strangers refused."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from civicshare.canonical import canonical_json
from civicshare.errors import InvalidInput, SecurityError, TooLarge, UsageError
from civicshare.exchange.deletion import (
    MAX_CERTIFICATE_BYTES,
    DeletionCertificate,
    check_certificate,
    make_certificate,
    peek_certificate,
    verify_certificate,
)
from civicshare.exchange.fields import Digest
from civicshare.exchange.manifest import PARQUET_MEDIA_TYPE, AgreementRef, HoldingInfo, Manifest
from civicshare.exchange.receipt import Receipt, sign_receipt

# A fixed key from a fixed seed, so the signature below is a known answer any implementation can check.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AGE = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
H = {c: c * 64 for c in "abcd"}
AGREEMENT = AgreementRef("DSA-2026-0001", 1, "e" * 64)
# The manifest the certificate answers.
SENT = Manifest(
    "t_abcdefghijklmnop", "north-wold", "south-fen", datetime(2026, 4, 22, 10, 0, tzinfo=UTC), AGREEMENT,
    HoldingInfo(id="h_qrstuvwxyz234567", kind="dataset", name="Residents", media_type=PARQUET_MEDIA_TYPE,
                rows=1000, columns=[{"name": "surname", "type": "string"}], classification="OFFICIAL"),
    Digest(123, H["a"]), Digest(456, H["b"]), AGE, 256, (H["c"], H["d"]))
CERTIFICATE = DeletionCertificate(
    "t_abcdefghijklmnop", "north-wold", "south-fen", "h_qrstuvwxyz234567", H["a"], H["b"], AGREEMENT,
    "agreement revoked: agreement DSA-2026-0001 was revoked by north-wold on 2026-05-02",
    datetime(2026, 5, 2, 10, 0, 7, tzinfo=UTC))
CANONICAL_BODY = (
    '{"agreement":{"id":"DSA-2026-0001","sha256":"' + "e" * 64 + '","version":1},"ciphertext_sha256":"' + H["b"]
    + '","deleted":"2026-05-02T10:00:07Z","holding":"h_qrstuvwxyz234567","plaintext_sha256":"' + H["a"] + '",'
    '"provider":"north-wold","reason":"agreement revoked: agreement DSA-2026-0001 was revoked by north-wold on '
    '2026-05-02","recipient":"south-fen","transfer":"t_abcdefghijklmnop","version":1}'
)


def signed(certificate: DeletionCertificate = CERTIFICATE, key: Any = KEY) -> dict[str, Any]:
    return make_certificate(certificate, "k_test", key.sign)


def test_known_answer_and_round_trip() -> None:
    document = signed()
    assert document["civicshare"] == "deletion-certificate" and document["version"] == 1
    assert canonical_json(document["body"]).decode() == CANONICAL_BODY
    signature = base64.b64decode(document["signature"]["value"])
    KEY.public_key().verify(signature, b"civicshare/deletion-certificate/v1\n" + CANONICAL_BODY.encode())
    assert verify_certificate(json.dumps(document, indent=2), recipient_key=PUBLIC) == (CERTIFICATE, document)
    assert peek_certificate(canonical_json(document)) == CERTIFICATE
    check_certificate(CERTIFICATE, SENT)


@pytest.mark.parametrize("field, value", [
    ("transfer", "t_other"), ("provider", "east-marsh"), ("recipient", "east-marsh"), ("holding", "h_other"),
    ("plaintext_sha256", H["c"]), ("ciphertext_sha256", H["c"]), ("reason", "retention ended"),
    ("deleted", "2026-05-02T10:00:08Z"), ("agreement", {"id": "DSA-2026-0001", "version": 2, "sha256": "e" * 64}),
])
def test_any_tampered_field_is_refused(field: str, value: object) -> None:
    document = signed()
    document["body"][field] = value
    peek_certificate(document)  # still well formed: only the signature can tell
    with pytest.raises(SecurityError, match="does not verify"):
        verify_certificate(document, recipient_key=PUBLIC)


def test_signed_by_another_key_is_refused() -> None:
    with pytest.raises(SecurityError, match="does not verify"):
        verify_certificate(signed(key=OTHER), recipient_key=PUBLIC)


def test_another_kind_of_document_is_refused() -> None:
    receipt = sign_receipt(Receipt(SENT.transfer, SENT.sender, SENT.recipient, H["d"], SENT.plaintext,
                                   SENT.ciphertext, "h_southfenholding1", CERTIFICATE.deleted, "log\n1\nabc=\n"),
                           "k_test", KEY.sign)
    with pytest.raises(InvalidInput, match="not a deletion-certificate"):
        verify_certificate(receipt, recipient_key=PUBLIC)
    # A receipt body re-labelled as a certificate is not a certificate either.
    relabelled = {**receipt, "civicshare": "deletion-certificate"}
    with pytest.raises(InvalidInput, match="not a valid civicshare deletion certificate"):
        verify_certificate(relabelled, recipient_key=PUBLIC)


@pytest.mark.parametrize("where", ["document", "body"])
def test_other_versions_are_refused(where: str) -> None:
    document = signed()
    if where == "document":
        document["version"] = 2
        match = "version 2"
    else:
        document["body"]["version"] = 2
        match = "not a valid"
    with pytest.raises(InvalidInput, match=match):
        verify_certificate(document, recipient_key=PUBLIC)


@pytest.mark.parametrize("field, value, message", [
    ("transfer", "x_1", "transfer id"), ("holding", "t_1", "holding id"), ("provider", "North Wold", "Organisation id"),
    ("plaintext_sha256", "ABC", "SHA-256"), ("deleted", "yesterday", "UTC time"), ("reason", "", "not blank"),
    ("reason", "x" * 501, "at most 500"), ("reason", "two\nlines", "one line"), ("agreement", None, "object"),
    ("agreement", {"id": "DSA-1", "version": 0, "sha256": "e" * 64}, "version number"),
    ("agreement", {"id": "DSA-1", "version": True, "sha256": "e" * 64}, "version number"),
    ("agreement", {"id": " bad id", "version": 1, "sha256": "e" * 64}, "id of a data sharing agreement"),
    ("agreement", {"id": "DSA-1", "version": 1}, "missing"),
    ("recipient", "north-wold", "own recipient"), ("version", "1", "reads version 1"),
])
def test_every_field_is_checked(field: str, value: object, message: str) -> None:
    body = copy.deepcopy(CERTIFICATE.to_body())
    body[field] = value
    with pytest.raises(InvalidInput) as caught:
        DeletionCertificate.from_body(body)
    assert any(p.field is not None and p.field.startswith(field) and message in p.message
               for p in caught.value.problems), caught.value.problems


def test_missing_and_unknown_fields_are_named() -> None:
    body = CERTIFICATE.to_body()
    del body["reason"]
    body["comment"] = "nothing to see"
    with pytest.raises(InvalidInput) as caught:
        DeletionCertificate.from_body(body)
    assert {(p.field, p.message) for p in caught.value.problems} == {
        ("reason", "is missing"), ("comment", "is not a field of a version 1 deletion certificate")}


def test_oversized_and_badly_built_certificates() -> None:
    with pytest.raises(TooLarge):
        peek_certificate("{" + " " * MAX_CERTIFICATE_BYTES + "}")
    with pytest.raises(UsageError, match="built wrongly"):
        signed(replace(CERTIFICATE, deleted=datetime(2026, 5, 2, 10, 0, 7, 500, tzinfo=UTC)))


@pytest.mark.parametrize("change, field", [
    ({"transfer": "t_anothertransfer1"}, "transfer"), ({"provider": "east-marsh"}, "provider"),
    ({"recipient": "east-marsh"}, "recipient"), ({"holding": "h_anotherholding1"}, "holding"),
    ({"plaintext_sha256": H["c"]}, "plaintext_sha256"), ({"ciphertext_sha256": H["c"]}, "ciphertext_sha256"),
    ({"agreement": AgreementRef("DSA-2026-0001", 2, "f" * 64)}, "agreement"),
    ({"agreement": AgreementRef("DSA-2026-0009", 1, "e" * 64)}, "agreement"),
])
def test_a_certificate_for_anything_else_than_what_was_sent_is_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SecurityError, match="does not match what was sent") as caught:
        check_certificate(replace(CERTIFICATE, **change), SENT)
    assert [p.field for p in caught.value.problems] == [field]
