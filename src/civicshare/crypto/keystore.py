"""The keystore interface every caller uses, whatever holds the keys.

A keystore holds an organisation's long-lived keys:

* signing keys (Ed25519) -- the organisation's card, receipts, checkpoints;
* age identities (X25519) -- what partners seal packages to;
* key-encryption keys (AES-256) -- wrap the per-holding data keys.

Callers ask for *operations* (sign, wrap, unwrap), never for raw signing keys or KEKs, so a PKCS#11
/ HSM backend can hold keys that never leave the token. The one exception is the age identity,
which has to leave so that the standard ``age`` tool can open a package
(``civicshare keys export --age-identity``).

Rules every backend follows:

* creating an id that exists raises ``Conflict``; an unknown id raises ``NotFound``; using a key
  for the wrong job (signing with a KEK) raises ``UsageError``;
* ``unwrap`` raises ``IntegrityError`` on any tampering, wrong aad or wrong KEK;
* after ``close()`` every operation raises ``KeystoreLocked``.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType

from civicshare.errors import UsageError

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class KeyType(StrEnum):
    """What a key is for; the value is what the key register shows and the keystore stores."""

    SIGNING = "ed25519"
    AGE = "age-x25519"
    KEK = "aes-256-kek"


ALGORITHMS = {
    KeyType.SIGNING: "Ed25519 (RFC 8032)",
    KeyType.AGE: "X25519 age v1 identity",
    KeyType.KEK: "AES-256-GCM key wrapping",
}


@dataclass(frozen=True)
class KeyInfo:
    """What the key register shows about one key: never the key itself."""

    key_id: str
    key_type: KeyType
    algorithm: str
    created: datetime
    backend: str
    location: str


def check_key_id(key_id: str) -> str:
    """Key ids are 1-128 characters of letters, digits and ``. _ : -``, starting with a letter or digit.

    They end up in file names, PKCS#11 labels and URLs, so nothing else is allowed.
    """
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
        raise UsageError(
            f"{key_id!r} is not a usable key id: use 1 to 128 letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit."
        )
    return key_id


class Keystore(abc.ABC):
    """Where an organisation's keys are held, and the operations done with them."""

    #: short name of the backend: "file", later "pkcs11"
    backend: str

    # -- custody ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def location(self, key_id: str) -> str:
        """Where the key is held, for the key register: ``/path/keystore.json#id`` or ``token/label``."""

    @abc.abstractmethod
    def has(self, key_id: str) -> bool:
        """Whether a key with this id exists."""

    @abc.abstractmethod
    def key_ids(self) -> list[str]:
        """Every key id, sorted."""

    @abc.abstractmethod
    def key_info(self, key_id: str) -> KeyInfo:
        """Type, algorithm, creation time and location of one key."""

    @abc.abstractmethod
    def destroy(self, key_id: str) -> None:
        """Remove the key material for good. Anything only it could open is lost (crypto-shredding)."""

    # -- signing ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_signing_key(self, key_id: str) -> bytes:
        """Generate an Ed25519 key; returns its 32-byte raw public key."""

    @abc.abstractmethod
    def sign(self, key_id: str, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``data``."""

    @abc.abstractmethod
    def public_key(self, key_id: str) -> bytes:
        """The 32-byte raw Ed25519 public key."""

    # -- age -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_age_identity(self, key_id: str) -> str:
        """Generate an age X25519 identity; returns its recipient ``age1...``."""

    @abc.abstractmethod
    def age_identity(self, key_id: str) -> str:
        """The secret identity ``AGE-SECRET-KEY-1...``: to open packages, or to export for ``age``."""

    @abc.abstractmethod
    def age_recipient(self, key_id: str) -> str:
        """The public recipient ``age1...``."""

    # -- key wrapping ----------------------------------------------------------------------------

    @abc.abstractmethod
    def create_kek(self, key_id: str) -> None:
        """Generate a 256-bit key-encryption key."""

    @abc.abstractmethod
    def wrap(self, kek_id: str, dek: bytes, aad: bytes) -> bytes:
        """Seal a data key under the KEK, bound to ``aad``."""

    @abc.abstractmethod
    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Open a wrapped data key; IntegrityError on tampering, wrong aad or wrong KEK."""

    # -- lifetime --------------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Forget the unlocked state; later operations raise KeystoreLocked."""

    def __enter__(self) -> Keystore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
