"""Receipts: a known-answer signature, tampering refused, and a receipt must answer its exact manifest."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.canonical import canonical_json
from civicshare.errors import IntegrityError, InvalidInput, SecurityError, TooLarge, UsageError
from civicshare.exchange.fields import Digest
from civicshare.exchange.manifest import manifest_sha256
from civicshare.exchange.receipt import (
    MAX_RECEIPT_BYTES,
    Receipt,
    check_receipt,
    parse_receipt,
    peek_receipt,
    sign_receipt,
)
from tests.exchange.test_manifest import DOCUMENT_SHA256, KEY, MANIFEST, OTHER, PUBLIC, H
from tests.exchange.test_manifest import signed as signed_manifest

CHECKPOINT = "south-fen.example/audit\n1\nabc=\n\n— south-fen xyz=\n"
RECEIPT = Receipt("t_abcdefghijklmnop", "north-wold", "south-fen", DOCUMENT_SHA256, Digest(123, H["a"]),
                  Digest(456, H["b"]), "h_southfenholding1", datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC), CHECKPOINT)
CANONICAL_BODY = (
    '{"checkpoint":"south-fen.example/audit\\n1\\nabc=\\n\\n— south-fen xyz=\\n","ciphertext":{"sha256":"'
    + H["b"] + '","size":456},"holding":"h_southfenholding1","manifest_sha256":"' + DOCUMENT_SHA256 + '",'
    '"plaintext":{"sha256":"' + H["a"] + '","size":123},"received":"2026-11-22T10:00:05Z","recipient":"south-fen",'
    '"sender":"north-wold","transfer":"t_abcdefghijklmnop"}'
)
SIGNATURE = "HdWGcgldyYuBXj7Up33v0j3lkCuNZ5ZmPHw/BxO4lVts3FaFgzbXKPkbaVA2h97c8Car68fKjgD+bLgUBItxCQ=="


def signed(receipt: Receipt = RECEIPT) -> dict[str, Any]:
    return sign_receipt(receipt, "k_test", KEY.sign)


def test_known_answer() -> None:
    document = signed()
    assert canonical_json(document["body"]).decode() == CANONICAL_BODY
    assert document["signature"]["value"] == SIGNATURE
    KEY.public_key().verify(base64.b64decode(SIGNATURE), b"civicshare/receipt/v1\n" + CANONICAL_BODY.encode())
    assert parse_receipt(json.dumps(document, indent=1), recipient_key=PUBLIC) == (RECEIPT, document)


@pytest.mark.parametrize("field, value", [
    ("transfer", "t_other"), ("sender", "east-marsh"), ("recipient", "east-marsh"), ("manifest_sha256", H["c"]),
    ("holding", "h_other"), ("received", "2026-11-22T10:00:06Z"), ("checkpoint", CHECKPOINT + "x\n"),
    ("plaintext", {"size": 124, "sha256": H["a"]}), ("ciphertext", {"size": 456, "sha256": H["c"]}),
])
def test_any_tampered_field_is_refused(field: str, value: object) -> None:
    document = signed()
    document["body"][field] = value
    peek_receipt(document)
    with pytest.raises(SecurityError, match="does not verify"):
        parse_receipt(document, recipient_key=PUBLIC)


def test_wrong_key_kind_or_size_is_refused() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    with pytest.raises(SecurityError):
        parse_receipt(signed(), recipient_key=OTHER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    with pytest.raises(InvalidInput, match="not a receipt"):
        parse_receipt(signed_manifest(), recipient_key=PUBLIC)
    with pytest.raises(TooLarge):
        peek_receipt("{" + " " * MAX_RECEIPT_BYTES + "}")


@pytest.mark.parametrize("field, value", [
    ("manifest_sha256", "ABC"), ("holding", "x_1"), ("received", "yesterday"), ("checkpoint", "no newline"),
    ("checkpoint", ""), ("plaintext", {"size": -1, "sha256": H["a"]}), ("recipient", "north-wold"),
])
def test_invalid_fields_are_named(field: str, value: object) -> None:
    body = RECEIPT.to_body()
    body[field] = value
    with pytest.raises(InvalidInput) as caught:
        Receipt.from_body(body)
    assert [p.field for p in caught.value.problems][0].startswith(field)


def test_check_receipt_accepts_the_matching_receipt() -> None:
    check_receipt(RECEIPT, MANIFEST, signed_manifest())


@pytest.mark.parametrize("change, field", [
    ({"transfer": "t_other"}, "transfer"),
    ({"sender": "east-marsh"}, "sender"),
    ({"recipient": "east-marsh"}, "recipient"),
    ({"manifest_sha256": H["c"]}, "manifest_sha256"),
    ({"plaintext": Digest(124, H["a"])}, "plaintext.size"),
    ({"plaintext": Digest(123, H["c"])}, "plaintext.sha256"),
    ({"ciphertext": Digest(455, H["b"])}, "ciphertext.size"),
    ({"ciphertext": Digest(456, H["c"])}, "ciphertext.sha256"),
])
def test_check_receipt_names_what_differs(change: dict[str, Any], field: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        check_receipt(replace(RECEIPT, **change), MANIFEST, signed_manifest())
    assert [p.field for p in caught.value.problems] == [field]


def test_check_receipt_against_a_different_manifest_document() -> None:
    document = signed_manifest()
    other = copy.deepcopy(document)
    other["signature"]["key"] = "k_other"  # unsigned, but part of the document whose hash was quoted
    assert manifest_sha256(other) != manifest_sha256(document)
    with pytest.raises(IntegrityError):
        check_receipt(RECEIPT, MANIFEST, other)
    other["body"]["agreement"] = "a_1"
    with pytest.raises(UsageError):
        check_receipt(RECEIPT, MANIFEST, other)


hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@settings(max_examples=60, deadline=None)
@given(st.builds(
    Receipt, st.just("t_x"), st.just("north-wold"), st.just("south-fen"), hex64,
    st.builds(Digest, st.integers(0, 2**40), hex64), st.builds(Digest, st.integers(1, 2**40), hex64),
    st.text("abc123", min_size=1, max_size=30).map(lambda s: "h_" + s),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)),
    st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and "\x00" not in s).map(lambda s: s + "\n"),
))
def test_round_trip(receipt: Receipt) -> None:
    assert Receipt.from_body(json.loads(json.dumps(receipt.to_body()))) == receipt
    document = signed(receipt)
    assert parse_receipt(canonical_json(document), recipient_key=PUBLIC) == (receipt, document)
