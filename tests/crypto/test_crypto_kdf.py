"""Argon2id key derivation: RFC 9106 known answer, parameter serialisation and bounds."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicshare.crypto.kdf import (
    DEFAULT_ITERATIONS,
    DEFAULT_LANES,
    DEFAULT_MEMORY_KIB,
    MAX_MEMORY_KIB,
    KdfParams,
    passphrase_bytes,
)
from civicshare.errors import UsageError


def test_rfc9106_argon2id_test_vector() -> None:
    # RFC 9106 section 5.3: Argon2id, version 0x13, m=32 KiB, t=3, p=4, tag length 32.
    params = KdfParams(memory_kib=32, iterations=3, lanes=4, salt=b"\x02" * 16)
    tag = params.derive(b"\x01" * 32, 32, secret=b"\x03" * 8, ad=b"\x04" * 12)
    assert tag.hex() == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"


def test_recommended_defaults_and_fresh_salts() -> None:
    a, b = KdfParams.recommended(), KdfParams.recommended()
    assert (a.memory_kib, a.iterations, a.lanes) == (64 * 1024, 3, 1)
    assert (a.memory_kib, a.iterations, a.lanes) == (DEFAULT_MEMORY_KIB, DEFAULT_ITERATIONS, DEFAULT_LANES)
    assert len(a.salt) == 16 and a.salt != b.salt


def test_injected_rng_gives_the_salt() -> None:
    assert KdfParams.recommended(lambda n: b"s" * n).salt == b"s" * 16
    assert KdfParams.fast_for_tests(lambda n: b"t" * n).salt == b"t" * 16


def test_a_broken_rng_is_refused() -> None:
    with pytest.raises(UsageError):
        KdfParams.recommended(lambda n: b"short")


def test_fast_for_tests_is_cheaper_than_recommended() -> None:
    fast, real = KdfParams.fast_for_tests(), KdfParams.recommended()
    assert fast.memory_kib < real.memory_kib and fast.iterations <= real.iterations


def test_derivation_depends_on_passphrase_and_salt() -> None:
    p = KdfParams.fast_for_tests(lambda n: b"a" * n)
    assert p.derive(b"one") == p.derive(b"one")
    assert p.derive(b"one") != p.derive(b"two")
    assert p.derive(b"one") != p.with_salt(b"b" * 16).derive(b"one")


params_strategy = st.builds(
    KdfParams,
    memory_kib=st.integers(min_value=128, max_value=MAX_MEMORY_KIB),
    iterations=st.integers(min_value=1, max_value=64),
    lanes=st.integers(min_value=1, max_value=16),
    salt=st.binary(min_size=16, max_size=64),
)


@given(params_strategy)
def test_params_round_trip_through_json(params: KdfParams) -> None:
    text = json.dumps(params.to_json())
    assert KdfParams.from_json(json.loads(text)) == params


@pytest.mark.parametrize(
    "change",
    [
        {"memory_kib": MAX_MEMORY_KIB + 1},
        {"memory_kib": 4},
        {"iterations": 0},
        {"iterations": 10_000},
        {"lanes": 0},
        {"lanes": 1000},
        {"memory_kib": "65536"},
        {"iterations": True},
        {"salt": "c2hvcnQ="},  # 5 bytes
        {"salt": "not base64!"},
        {"salt": 17},
        {"algorithm": "scrypt"},
        {"extra": 1},
    ],
)
def test_malformed_or_out_of_bounds_params_are_refused(change: dict[str, object]) -> None:
    data = KdfParams.fast_for_tests().to_json() | change
    with pytest.raises(UsageError):
        KdfParams.from_json(data)


def test_from_json_needs_an_object() -> None:
    with pytest.raises(UsageError):
        KdfParams.from_json(["argon2id"])


def test_passphrases_are_normalised_before_derivation() -> None:
    composed = "caf\u00e9 au lait"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert passphrase_bytes(composed) == passphrase_bytes(decomposed)


def test_derive_wants_bytes() -> None:
    with pytest.raises(UsageError):
        KdfParams.fast_for_tests().derive("text")  # type: ignore[arg-type]
