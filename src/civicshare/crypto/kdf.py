"""Passphrase key derivation: Argon2id (RFC 9106) with its parameters kept beside the data.

A keystore file records the exact ``KdfParams`` it was sealed with, so the cost can be raised for
new keystores without locking anyone out of an old one. Parameters read from a file are checked
against hard bounds before use: a crafted file must not be able to make a node allocate many
gigabytes (or spin for minutes) just by being opened.
"""

from __future__ import annotations

import base64
import binascii
import os
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from civicshare.crypto.randomness import Rng, random_bytes
from civicshare.errors import UsageError

ALGORITHM = "argon2id"
SALT_BYTES = 16

# Defaults: the shape of RFC 9106's "second recommended option" (64 MiB, 3 passes), with one lane so
# that the cost does not depend on how many cores the server has. Measured on the 2-core build
# server: about 0.18 s to derive, so a CLI command or a server start unlocks in well under 0.5 s.
DEFAULT_MEMORY_KIB = 64 * 1024
DEFAULT_ITERATIONS = 3
DEFAULT_LANES = 1

# Hard bounds for parameters read from disk.
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_ITERATIONS = 64
MAX_LANES = 16
MIN_SALT_BYTES = 16
MAX_SALT_BYTES = 64


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise UsageError(f"The {what} is not valid base64.") from exc


def passphrase_bytes(passphrase: str) -> bytes:
    """The bytes a passphrase stands for: NFC-normalised UTF-8.

    Normalising means the same passphrase typed on two systems that compose accented letters
    differently still unlocks the keystore.
    """
    if not isinstance(passphrase, str):
        raise UsageError("A passphrase must be text.")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters (and salt) used to turn a passphrase into a key.

    ``memory_kib`` is the memory cost in KiB, ``iterations`` the number of passes, ``lanes`` the
    degree of parallelism, ``salt`` at least 16 random bytes.
    """

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "lanes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"Argon2id {name} must be a whole number, not {value!r}.")
        if not isinstance(self.salt, bytes):
            raise UsageError("The Argon2id salt must be bytes.")
        if not 1 <= self.lanes <= MAX_LANES:
            raise UsageError(f"Argon2id lanes must be between 1 and {MAX_LANES}, not {self.lanes}.")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise UsageError(f"Argon2id iterations must be between 1 and {MAX_ITERATIONS}, not {self.iterations}.")
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise UsageError(
                f"Argon2id memory must be between {8 * self.lanes} KiB and {MAX_MEMORY_KIB} KiB, "
                f"not {self.memory_kib} KiB."
            )
        if not MIN_SALT_BYTES <= len(self.salt) <= MAX_SALT_BYTES:
            raise UsageError(
                f"The Argon2id salt must be {MIN_SALT_BYTES} to {MAX_SALT_BYTES} bytes, not {len(self.salt)}."
            )

    @classmethod
    def recommended(cls, rng: Rng = os.urandom) -> KdfParams:
        """The production defaults with a fresh random salt."""
        return cls(
            memory_kib=DEFAULT_MEMORY_KIB,
            iterations=DEFAULT_ITERATIONS,
            lanes=DEFAULT_LANES,
            salt=_salt(rng),
        )

    @classmethod
    def fast_for_tests(cls, rng: Rng = os.urandom) -> KdfParams:
        """Deliberately weak parameters FOR TESTS ONLY (the test suite opens many keystores).

        A keystore sealed with these falls to a passphrase-guessing attack far sooner than one
        sealed with ``recommended()``. Never use them for a real keystore.
        """
        return cls(memory_kib=64, iterations=1, lanes=1, salt=_salt(rng))

    def with_salt(self, salt: bytes) -> KdfParams:
        """The same costs with another salt."""
        return KdfParams(self.memory_kib, self.iterations, self.lanes, salt)

    def derive(
        self, passphrase: bytes, length: int = 32, *, secret: bytes | None = None, ad: bytes | None = None
    ) -> bytes:
        """Argon2id(passphrase) -> ``length`` bytes. ``secret`` and ``ad`` are RFC 9106's K and X."""
        if not isinstance(passphrase, bytes):
            raise UsageError("derive() takes the passphrase as bytes; see passphrase_bytes().")
        if not 4 <= length <= 1024:
            raise UsageError(f"Argon2id output length must be 4 to 1024 bytes, not {length}.")
        kdf = Argon2id(
            salt=self.salt,
            length=length,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
            ad=ad,
            secret=secret,
        )
        return kdf.derive(passphrase)

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "memory_kib": self.memory_kib,
            "iterations": self.iterations,
            "lanes": self.lanes,
            "salt": _b64encode(self.salt),
        }

    @classmethod
    def from_json(cls, data: Any) -> KdfParams:
        """Parse and bound-check parameters; raises UsageError when they are malformed."""
        if not isinstance(data, dict):
            raise UsageError("The key derivation parameters must be a JSON object.")
        expected = {"algorithm", "memory_kib", "iterations", "lanes", "salt"}
        if set(data) != expected:
            raise UsageError(
                f"The key derivation parameters must have exactly the fields {sorted(expected)}, not {sorted(data)}."
            )
        if data["algorithm"] != ALGORITHM:
            raise UsageError(f"Unknown key derivation algorithm {data['algorithm']!r}; expected argon2id.")
        if not isinstance(data["salt"], str):
            raise UsageError("The Argon2id salt must be base64 text.")
        return cls(
            memory_kib=data["memory_kib"],
            iterations=data["iterations"],
            lanes=data["lanes"],
            salt=_b64decode(data["salt"], "Argon2id salt"),
        )


def _salt(rng: Rng) -> bytes:
    return random_bytes(rng, SALT_BYTES)
