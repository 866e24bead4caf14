"""The wrapped-data-key format: a pinned vector, round trips, and every kind of tampering."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.crypto.wrapping import MIN_WRAPPED_BYTES, unwrap_key, wrap_key
from civicshare.errors import IntegrityError, UsageError

KEK = bytes(range(32))
DEK = bytes(range(0x40, 0x60))
AAD = b"org:council-a/holding:h-0001"
PINNED = bytes.fromhex(
    "01a0a1a2a3a4a5a6a7a8a9aaab"
    "a6593e6e018e44f82a2ccd984b378e9120fd0b43c6e2143bc4577cdd23f62b5e"
    "3c9e86a495fa20d0c4ec775721184eec"
)


def fixed_rng(n: int) -> bytes:
    return bytes(range(0xA0, 0xA0 + n))


def test_fixed_rng_gives_the_pinned_bytes() -> None:
    assert wrap_key(KEK, DEK, AAD, fixed_rng) == PINNED


def test_pinned_bytes_follow_the_documented_layout() -> None:
    nonce = fixed_rng(12)
    assert PINNED[0] == 1 and PINNED[1:13] == nonce
    assert PINNED[13:] == AESGCM(KEK).encrypt(nonce, DEK, b"\x01" + AAD)
    assert unwrap_key(KEK, PINNED, AAD) == DEK


def test_each_wrap_uses_a_fresh_nonce() -> None:
    assert wrap_key(KEK, DEK, AAD) != wrap_key(KEK, DEK, AAD)


keys = st.binary(min_size=32, max_size=32)
deks = st.binary(min_size=16, max_size=64)


@given(kek=keys, dek=deks, aad=st.binary(max_size=200))
def test_round_trip(kek: bytes, dek: bytes, aad: bytes) -> None:
    assert unwrap_key(kek, wrap_key(kek, dek, aad), aad) == dek


@given(kek=keys, dek=deks, aad=st.binary(max_size=64), data=st.data())
@settings(max_examples=300)
def test_any_single_bit_flip_is_detected(kek: bytes, dek: bytes, aad: bytes, data: st.DataObject) -> None:
    wrapped = bytearray(wrap_key(kek, dek, aad))
    bit = data.draw(st.integers(min_value=0, max_value=len(wrapped) * 8 - 1))
    wrapped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError, match="could not be unwrapped: wrong key or tampered"):
        unwrap_key(kek, bytes(wrapped), aad)


@given(kek=keys, dek=deks, aad=st.binary(max_size=64), other=st.binary(max_size=64))
def test_other_aad_is_refused(kek: bytes, dek: bytes, aad: bytes, other: bytes) -> None:
    if other == aad:
        other = aad + b"x"
    with pytest.raises(IntegrityError):
        unwrap_key(kek, wrap_key(kek, dek, aad), other)


@given(kek=keys, other=keys, dek=deks, aad=st.binary(max_size=64))
def test_another_kek_is_refused(kek: bytes, other: bytes, dek: bytes, aad: bytes) -> None:
    if other == kek:
        other = bytes(b ^ 1 for b in kek)
    with pytest.raises(IntegrityError):
        unwrap_key(other, wrap_key(kek, dek, aad), aad)


@given(cut=st.integers(min_value=0, max_value=len(PINNED) - 1))
def test_truncation_is_refused(cut: int) -> None:
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, PINNED[:cut], AAD)


def test_extension_is_refused() -> None:
    with pytest.raises(IntegrityError):
        unwrap_key(KEK, PINNED + b"\x00", AAD)


def test_unknown_version_is_named() -> None:
    with pytest.raises(IntegrityError, match="version 2"):
        unwrap_key(KEK, b"\x02" + PINNED[1:], AAD)


def test_minimum_length_is_consistent() -> None:
    assert len(wrap_key(KEK, b"k" * 16, b"")) == MIN_WRAPPED_BYTES


@pytest.mark.parametrize(
    ("kek", "dek", "aad"),
    [
        (b"short", DEK, AAD),
        (KEK + b"x", DEK, AAD),
        (KEK, b"", AAD),
        (KEK, b"too short", AAD),
        (KEK, "text", AAD),
        (KEK, DEK, "text"),
    ],
)
def test_caller_mistakes_are_usage_errors(kek: bytes, dek: bytes, aad: bytes) -> None:
    with pytest.raises(UsageError):
        wrap_key(kek, dek, aad)


def test_unwrap_caller_mistakes_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        unwrap_key(b"short", PINNED, AAD)
    with pytest.raises(UsageError):
        unwrap_key(KEK, PINNED.hex(), AAD)  # type: ignore[arg-type]


def test_a_broken_rng_is_refused() -> None:
    with pytest.raises(UsageError):
        wrap_key(KEK, DEK, AAD, lambda n: b"")
