"""RFC 9421 request signatures on their own: exact headers, and every way a request can be refused."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.errors import DigestMismatch, SignatureRefused, UnknownSender, UsageError
from civicshare.exchange import httpsig
from civicshare.exchange.httpsig import (
    MAX_SKEW,
    SignedRequest,
    claimed_sender,
    new_nonce,
    sign_request,
    verify_request,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NONCE = "ge3dgmzqgezdsmzugq2tmnzygm"
URL = "https://share.southfen.example/orgs/south-fen/transfers/t_1"
PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def signed(method: str = "PUT", url: str = URL, body: bytes = b'{"transfer":"t_1"}', *, key: Any = PRIVATE,
           now: datetime = T0, nonce: str = NONCE, sender: str = "north-wold") -> httpx.Request:
    request = httpx.Request(method, url, content=body)
    sign_request(request, sender=sender, sign=key.sign, now=now, nonce=nonce)
    return request


def keys_for(mapping: dict[str, bytes]) -> Callable[[str], bytes]:
    def lookup(sender: str) -> bytes:
        if sender not in mapping:
            raise UnknownSender(f"No organisation called {sender} is pinned.")
        return mapping[sender]
    return lookup


def verify(request: httpx.Request, **changes: Any) -> SignedRequest:
    args: dict[str, Any] = {"method": request.method, "url": str(request.url),
                            "headers": request.headers.multi_items(), "body": request.content, "now": T0,
                            "public_key_for": keys_for({"north-wold": PUBLIC})}
    args.update(changes)
    return verify_request(**args)


def test_known_answer_headers_and_round_trip() -> None:
    request = signed()
    body = b'{"transfer":"t_1"}'
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert request.headers["content-digest"] == f"sha-256=:{digest}:"
    created = int(T0.timestamp())
    assert request.headers["signature-input"] == (
        f'sig1=("@method" "@target-uri" "content-digest");created={created};keyid="north-wold";alg="ed25519";'
        f'nonce="{NONCE}";tag="civicshare"')
    # Ed25519 is deterministic: the signature over this exact base is fixed.
    base = (f'"@method": PUT\n"@target-uri": {URL}\n"content-digest": sha-256=:{digest}:\n'
            f'"@signature-params": ("@method" "@target-uri" "content-digest");created={created};'
            f'keyid="north-wold";alg="ed25519";nonce="{NONCE}";tag="civicshare"').encode()
    assert request.headers["signature"] == f"sig1=:{base64.b64encode(PRIVATE.sign(base)).decode()}:"
    assert verify(request) == SignedRequest("north-wold", NONCE, T0, hashlib.sha256(body).digest())
    assert claimed_sender(request.headers.multi_items()) == "north-wold"


def test_an_empty_body_is_still_digested_and_covered() -> None:
    request = signed("GET", body=b"")
    empty = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert request.headers["content-digest"] == f"sha-256=:{empty}:"
    assert verify(request).sender == "north-wold"
    with pytest.raises(DigestMismatch):
        verify(request, body=b"x")


def test_a_flipped_body_byte_is_a_digest_mismatch() -> None:
    request = signed()
    flipped = bytearray(request.content)
    flipped[3] ^= 1
    with pytest.raises(DigestMismatch, match="not the one that was signed") as caught:
        verify(request, body=bytes(flipped))
    assert caught.value.code == "digest_mismatch"


@pytest.mark.parametrize("change", [
    {"url": URL.replace("t_1", "t_2")},
    {"url": URL.replace("south-fen/", "east-marsh/")},
    {"method": "POST"},
])
def test_a_changed_url_or_method_does_not_verify(change: dict[str, str]) -> None:
    with pytest.raises(SignatureRefused, match="does not verify with the signing key of north-wold") as caught:
        verify(signed(), **change)
    assert caught.value.code == "bad_signature"


def test_a_signature_by_another_key_does_not_verify() -> None:
    with pytest.raises(SignatureRefused, match="signed with another key"):
        verify(signed(key=OTHER))


def test_a_changed_digest_header_does_not_verify() -> None:
    request = signed()
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    headers = [(k, f"sha-256=:{other}:" if k.lower() == "content-digest" else v)
               for k, v in request.headers.multi_items()]
    with pytest.raises(SignatureRefused, match="does not verify"):
        verify(request, headers=headers, body=b"other")


@pytest.mark.parametrize("offset, words", [(MAX_SKEW + timedelta(seconds=1), "more than 5 minutes before"),
                                           (-MAX_SKEW - timedelta(seconds=1), "more than 5 minutes after")])
def test_stale_or_future_signatures_are_refused(offset: timedelta, words: str) -> None:
    request = signed()
    with pytest.raises(SignatureRefused, match=words):
        verify(request, now=T0 + offset)
    # Just inside the window is fine either way.
    inside = offset - timedelta(seconds=2) if offset > timedelta(0) else offset + timedelta(seconds=2)
    assert verify(request, now=T0 + inside).sender == "north-wold"


@pytest.mark.parametrize("missing", ["signature", "signature-input", "content-digest"])
def test_missing_headers_are_refused(missing: str) -> None:
    request = signed()
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != missing]
    with pytest.raises(SignatureRefused, match="is not signed"):
        verify(request, headers=headers)


def _with_input(request: httpx.Request, replace: Callable[[str], str]) -> list[tuple[str, str]]:
    return [(k, replace(v) if k.lower() == "signature-input" else v) for k, v in request.headers.multi_items()]


@pytest.mark.parametrize("edit, words", [
    (lambda v: v.replace(';tag="civicshare"', ';tag="other"'), "cannot be checked"),
    (lambda v: v.replace(';tag="civicshare"', ""), "cannot be checked"),
    (lambda v: v.replace(';alg="ed25519"', ';alg="hmac-sha256"'), "only ed25519"),
    (lambda v: v.replace(f';nonce="{NONCE}"', ""), "lacks nonce"),
    (lambda v: v.replace(f'nonce="{NONCE}"', 'nonce="abc"'), "nonce is missing or too short"),
    (lambda v: v.replace(' "content-digest")', ")"), "exactly"),
    (lambda v: v.replace('"@target-uri"', '"@authority"'), "exactly"),
    (lambda v: v + ';expires=1900000000', "does not use: expires"),
    (lambda v: v.replace("sig1=", "sig2="), "cannot be checked"),
    (lambda v: "sig1=nonsense(", "cannot be checked"),
])
def test_signatures_outside_our_profile_are_refused(edit: Callable[[str], str], words: str) -> None:
    request = signed()
    with pytest.raises(SignatureRefused, match=words):
        verify(request, headers=_with_input(request, edit))


def test_unknown_senders_pass_through_from_the_key_lookup() -> None:
    with pytest.raises(UnknownSender, match="east-marsh"):
        verify(signed(sender="east-marsh"))


def test_nonces_are_128_bits_of_base32() -> None:
    nonce = new_nonce(lambda n: bytes(n))
    assert nonce == "a" * 26
    assert len({new_nonce(functools.partial(lambda i, n: bytes([i]) * n, i)) for i in range(50)}) == 50


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=2048), path=st.from_regex(r"/[a-z0-9_/-]{0,40}", fullmatch=True),
       method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]))
def test_any_body_round_trips_and_any_change_to_it_is_caught(body: bytes, path: str, method: str) -> None:
    url = "https://share.southfen.example/orgs/south-fen" + path
    request = signed(method, url, body)
    assert verify(request) == SignedRequest("north-wold", NONCE, T0, hashlib.sha256(body).digest())
    with pytest.raises(DigestMismatch):
        verify(request, body=body + b"\0")


def test_the_verified_request_carries_the_bodys_sha256_from_its_signed_digest() -> None:
    body = b"part bytes" * 1000
    assert verify(signed(body=body)).body_sha256 == hashlib.sha256(body).digest()
    assert verify(signed(body=b"")).body_sha256 == hashlib.sha256(b"").digest()


def test_the_signed_sha256_member_is_read_strictly() -> None:
    digest = hashlib.sha256(b"body").digest()
    field = "sha-256=:" + base64.b64encode(digest).decode() + ":"
    other = "sha-512=:" + base64.b64encode(bytes(64)).decode() + ":"
    read = httpsig._signed_sha256
    assert read({'"content-digest"': field}) == digest
    assert read({'"content-digest"': other + ", " + field}) == digest
    assert read({'"content-digest"': other}) is None
    assert read({'"@method"': "PUT"}) is None
    assert read({'"content-digest"': field + ", " + field}) is None  # a duplicate member: hash the body
    assert read({'"content-digest"': "sha-256=:" + base64.b64encode(bytes(31)).decode() + ":"}) is None
    assert read({'"content-digest"': "not a dictionary (("}) is None


def test_a_digest_known_beforehand_signs_the_same_request_without_hashing_the_body_again() -> None:
    body = b"a part of a sealed payload" * 100
    known = httpx.Request("PUT", URL, content=body)
    sign_request(known, sender="north-wold", sign=PRIVATE.sign, now=T0, nonce=NONCE,
                 body_sha256=hashlib.sha256(body).digest())
    hashed = signed(body=body)
    for name in ("content-digest", "signature-input", "signature"):
        assert known.headers[name] == hashed.headers[name]
    assert verify(known).body_sha256 == hashlib.sha256(body).digest()


def test_a_wrong_digest_known_beforehand_is_refused_by_the_recipient() -> None:
    body = b"the bytes sent"
    request = httpx.Request("PUT", URL, content=body)
    sign_request(request, sender="north-wold", sign=PRIVATE.sign, now=T0, nonce=NONCE,
                 body_sha256=hashlib.sha256(b"other bytes").digest())
    with pytest.raises(DigestMismatch):
        verify(request)
    with pytest.raises(UsageError, match="32 bytes"):
        sign_request(httpx.Request("PUT", URL, content=body), sender="north-wold", sign=PRIVATE.sign, now=T0,
                     nonce=NONCE, body_sha256=b"short")
