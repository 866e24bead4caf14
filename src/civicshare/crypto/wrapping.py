"""The wrapped-data-key format: a data key sealed under a key-encryption key (KEK).

Layout (version 1)::

    0x01 || nonce (12 bytes, random) || AES-256-GCM ciphertext of the data key, with its 16-byte tag

The GCM associated data is ``0x01 || aad``: the caller's ``aad`` (for example the holding id and
organisation) binds the wrapped key to what it protects, so a wrapped key copied onto another
holding will not unwrap; the version byte is bound too, so it cannot be swapped.

Every failure to unwrap stored bytes -- a flipped bit, the wrong KEK, the wrong aad, a truncated
value, an unknown version byte -- raises ``IntegrityError``: from the outside they are all the same
thing, stored data that does not check out. Mistakes by the caller (a KEK of the wrong size, a data
key that is not bytes) raise ``UsageError``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from civicshare.crypto.randomness import Rng, random_bytes
from civicshare.errors import IntegrityError, UsageError

WRAP_VERSION = 1
KEK_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_DEK_BYTES = 16
MAX_DEK_BYTES = 1024
_HEADER = bytes([WRAP_VERSION])
MIN_WRAPPED_BYTES = len(_HEADER) + NONCE_BYTES + MIN_DEK_BYTES + TAG_BYTES

_UNWRAP_FAILED = "The data key could not be unwrapped: wrong key or tampered"


def _check_kek(kek: bytes) -> None:
    if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
        raise UsageError(f"A key-encryption key must be {KEK_BYTES} bytes (AES-256).")


def _check_aad(aad: bytes) -> None:
    if not isinstance(aad, bytes):
        raise UsageError("The associated data (aad) must be bytes.")


def wrap_key(kek: bytes, dek: bytes, aad: bytes, rng: Rng = os.urandom) -> bytes:
    """Seal ``dek`` under ``kek`` (AES-256-GCM, fresh random nonce), bound to ``aad``."""
    _check_kek(kek)
    _check_aad(aad)
    if not isinstance(dek, bytes) or not MIN_DEK_BYTES <= len(dek) <= MAX_DEK_BYTES:
        raise UsageError(f"A data key must be {MIN_DEK_BYTES} to {MAX_DEK_BYTES} bytes.")
    nonce = random_bytes(rng, NONCE_BYTES)
    ciphertext = AESGCM(kek).encrypt(nonce, dek, _HEADER + aad)
    return _HEADER + nonce + ciphertext


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Open a value made by ``wrap_key``; raises IntegrityError unless kek, aad and bytes all match."""
    _check_kek(kek)
    _check_aad(aad)
    if not isinstance(wrapped, bytes):
        raise UsageError("A wrapped data key must be bytes.")
    if len(wrapped) < MIN_WRAPPED_BYTES:
        raise IntegrityError(f"{_UNWRAP_FAILED} (it is too short to be a wrapped key).")
    if wrapped[0] != WRAP_VERSION:
        raise IntegrityError(
            f"{_UNWRAP_FAILED} (it claims wrapping format version {wrapped[0]}; this civicshare "
            f"knows only version {WRAP_VERSION})."
        )
    nonce = wrapped[1 : 1 + NONCE_BYTES]
    ciphertext = wrapped[1 + NONCE_BYTES :]
    try:
        return AESGCM(kek).decrypt(nonce, ciphertext, _HEADER + aad)
    except InvalidTag:
        raise IntegrityError(f"{_UNWRAP_FAILED}.") from None
