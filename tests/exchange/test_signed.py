"""Signed documents: domain-separated Ed25519 over canonical JSON; tampering raises, malformed is refused."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.errors import InvalidInput, SecurityError, UsageError
from civicshare.exchange.signed import sign_document, signing_input, verify_document
from tests.exchange.test_canonical import json_values

BODY = {"org_id": "north-wold", "items": ["name", "postcode"], "count": 3, "ok": True, "note": None}


class Key:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


KEY, OTHER = Key(), Key()


def signed(body: dict[str, Any] = BODY, kind: str = "card", key: Key = KEY) -> dict[str, Any]:
    return sign_document(kind, copy.deepcopy(body), "k_test", key.sign)


def test_round_trip_through_json_text_in_any_layout() -> None:
    document = signed()
    assert set(document) == {"civicshare", "version", "body", "signature"}
    assert document["civicshare"] == "card" and document["version"] == 1
    assert document["signature"]["alg"] == "Ed25519" and document["signature"]["key"] == "k_test"
    assert verify_document("card", document, KEY.public) == BODY
    # Layout and key order are not signed; the body's canonical bytes are.
    pretty = json.loads(json.dumps(document, indent=4, sort_keys=True))
    pretty["body"] = dict(reversed(list(pretty["body"].items())))
    assert verify_document("card", pretty, KEY.public) == BODY


def test_the_signature_covers_the_kind_and_version_prefix() -> None:
    data = signing_input("card", BODY)
    assert data.startswith(b"civicshare/card/v1\n")
    assert KEY.private.public_key().verify(base64.b64decode(signed()["signature"]["value"]), data) is None


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_round_trip_any_json_body(body: dict[str, Any]) -> None:
    assert verify_document("receipt", signed(body, "receipt"), KEY.public) == body


def _flip_signature(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["signature"]["value"]))
    raw[10] ^= 0x01
    doc["signature"]["value"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("change", [
    lambda d: d["body"].update(count=4),
    lambda d: d["body"].update(org_id="south-fen"),
    lambda d: d["body"].update(extra="smuggled"),
    lambda d: d["body"].pop("note"),
    lambda d: d["body"]["items"].reverse(),
    lambda d: d["body"].update(ok=1),
    _flip_signature,
], ids=["count", "org", "added", "removed", "order", "bool-as-int", "signature"])
def test_any_change_to_body_or_signature_is_a_security_error(change: Any) -> None:
    document = signed()
    change(document)
    with pytest.raises(SecurityError, match="does not verify"):
        verify_document("card", document, KEY.public)


def test_a_document_passed_off_as_another_kind_does_not_verify() -> None:
    document = signed(kind="card")
    document["civicshare"] = "receipt"
    with pytest.raises(SecurityError):
        verify_document("receipt", document, KEY.public)


def test_another_key_does_not_verify() -> None:
    with pytest.raises(SecurityError):
        verify_document("card", signed(), OTHER.public)
    with pytest.raises(SecurityError):
        verify_document("card", signed(key=OTHER), KEY.public)


def test_the_key_hint_is_only_a_hint() -> None:
    document = signed()
    document["signature"]["key"] = "k_someone_else"
    assert verify_document("card", document, KEY.public) == BODY
    del document["signature"]["key"]
    assert verify_document("card", document, KEY.public) == BODY


def _set(path: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return change


@pytest.mark.parametrize(("change", "words"), [
    (_set("civicshare", KeyError), "not a civicshare signed document"),
    (_set("civicshare", "receipt"), "not a card"),
    (_set("version", 2), "version 2"),
    (_set("version", "1"), "version '1'"),
    (_set("version", True), "version True"),
    (_set("unsigned", "extra"), "fields a version 1 document does not"),
    (_set("body", ["not", "an", "object"]), "not a JSON object"),
    (_set("body", KeyError), "not a JSON object"),
    (_set("signature", KeyError), "no signature"),
    (_set("signature", "AAAA"), "no signature"),
    (_set("signature.alg", "RS256"), "only Ed25519"),
    (_set("signature.value", "not base64!"), "not valid base64"),
    (_set("signature.value", base64.b64encode(b"x" * 63).decode()), "63 bytes"),
    (_set("signature.value", 12), "base64 text"),
    (_set("signature.key", 7), "key hint"),
    (_set("signature.extra", "x"), "unknown fields"),
    (_set("body.count", 1.5), "whole numbers"),
])
def test_malformed_documents_are_invalid_input(change: Any, words: str) -> None:
    document = signed()
    change(document)
    with pytest.raises(InvalidInput, match=words):
        verify_document("card", document, KEY.public)


def test_non_canonical_base64_signature_is_refused() -> None:
    document = signed()
    value = document["signature"]["value"]  # 64 bytes: ends in "==", the last data character has spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = value[-3]
    document["signature"]["value"] = value[:-3] + alphabet[alphabet.index(last) ^ 1] + "=="
    with pytest.raises(InvalidInput, match="canonical"):
        verify_document("card", document, KEY.public)


def test_not_an_object_and_bad_arguments() -> None:
    for document in (None, [], "card", 3):
        with pytest.raises(InvalidInput):
            verify_document("card", document, KEY.public)
    with pytest.raises(InvalidInput, match="32 bytes"):
        verify_document("card", signed(), KEY.public[:31])
    for kind in ("Card", "a/b", "card\nx", "", "x" * 41):
        with pytest.raises(UsageError):
            sign_document(kind, BODY, "k", KEY.sign)
    with pytest.raises(UsageError):
        sign_document("card", BODY, "k", lambda data: b"short")
