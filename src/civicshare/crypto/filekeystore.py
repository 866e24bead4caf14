"""The file keystore: an organisation's keys in one passphrase-protected file.

The format is described in ``keystorefile``. Every change re-reads the file under an exclusive
lock (``<file>.lock``) and rewrites it atomically (fresh nonce each time), so two processes -- the
server and a CLI command -- never lose each other's keys; every operation notices a change made by
another process, so a key destroyed by one is gone for all.

Limits: Python cannot wipe memory, so unlocked keys stay in this process until it exits (``close``
drops the references); and a destroyed key remains in any *backup* of the keystore file made
before, readable by whoever also has the passphrase. Keep keystore backups under the same custody
as the passphrase.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from civicshare.crypto.atomicfile import atomic_write, exclusive_lock
from civicshare.crypto.kdf import KdfParams
from civicshare.crypto.keystore import ALGORITHMS, KeyInfo, Keystore, KeyType, check_key_id
from civicshare.crypto.keystorefile import (
    Entry,
    derive_keys,
    make_header,
    open_content,
    parse,
    read_file,
    seal,
    unb64,
)
from civicshare.crypto.passphrase import check_new_passphrase
from civicshare.crypto.randomness import Rng, random_bytes
from civicshare.crypto.wrapping import KEK_BYTES, unwrap_key, wrap_key
from civicshare.errors import Conflict, KeystoreLocked, NotFound, UsageError

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FileKeystore(Keystore):
    """Keys in one passphrase-protected file. Use ``create`` or ``open``, not the constructor."""

    backend = "file"

    def __init__(
        self,
        path: Path,
        *,
        header: dict[str, Any],
        file_key: bytes,
        entries: dict[str, Entry],
        raw: bytes,
        rng: Rng,
        clock: Clock,
    ) -> None:
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._header = header
        self._file_key: bytes | None = file_key
        self._entries = entries
        self._raw = raw
        self._rng = rng
        self._clock = clock
        # Threads of one process (the API server) share the in-memory state; the file lock below
        # only orders processes, so state changes also hold this lock.
        self._state_lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        *,
        kdf: KdfParams | None = None,
        rng: Rng = os.urandom,
        clock: Clock = _utc_now,
    ) -> FileKeystore:
        """Make a new, empty keystore at ``path``; Conflict if something is already there."""
        path = Path(path).absolute()
        check_new_passphrase(passphrase)
        kdf = kdf if kdf is not None else KdfParams.recommended(rng)
        file_key, check = derive_keys(passphrase, kdf)
        header = make_header(kdf, check)
        raw = seal(header, file_key, {}, rng)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive_lock(path.with_name(path.name + ".lock")):
            try:
                atomic_write(path, raw, overwrite=False)
            except Conflict:
                raise Conflict(f"A keystore already exists at {path}; it was left as it was.") from None
        return cls(path, header=header, file_key=file_key, entries={}, raw=raw, rng=rng, clock=clock)

    @classmethod
    def open(cls, path: Path, passphrase: str, *, rng: Rng = os.urandom, clock: Clock = _utc_now) -> FileKeystore:
        """Unlock the keystore at ``path``; KeystoreLocked if the passphrase is wrong."""
        path = Path(path).absolute()
        if not isinstance(passphrase, str) or not passphrase:
            raise KeystoreLocked(f"No passphrase was given, so the keystore {path} stays locked.")
        raw = read_file(path)
        header, kdf, nonce, ciphertext = parse(raw, path)
        file_key, check = derive_keys(passphrase, kdf)
        if not hmac.compare_digest(check, unb64(header["check"])):
            raise KeystoreLocked(f"The keystore passphrase is wrong: {path} could not be unlocked.")
        entries = open_content(header, file_key, nonce, ciphertext, path)
        return cls(path, header=header, file_key=file_key, entries=entries, raw=raw, rng=rng, clock=clock)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._state_lock:
            self._file_key = None
            self._entries = {}

    def change_passphrase(self, new_passphrase: str, *, kdf: KdfParams | None = None) -> None:
        """Re-seal every key under a new passphrase (and a fresh salt)."""
        check_new_passphrase(new_passphrase)
        kdf = kdf if kdf is not None else KdfParams.recommended(self._rng)
        file_key, check = derive_keys(new_passphrase, kdf)
        with self._state_lock, exclusive_lock(self._lock_path):
            entries = self._refresh()
            header = make_header(kdf, check)
            raw = seal(header, file_key, entries, self._rng)
            atomic_write(self._path, raw)
            self._header, self._file_key, self._raw = header, file_key, raw

    # -- state -----------------------------------------------------------------------------------

    def _unlocked_key(self) -> bytes:
        if self._file_key is None:
            raise KeystoreLocked(f"The keystore {self._path} is closed; open it again with its passphrase.")
        return self._file_key

    def _refresh(self) -> dict[str, Entry]:
        """Pick up any change another process made to the file since we last read or wrote it."""
        with self._state_lock:
            file_key = self._unlocked_key()
            raw = read_file(self._path)
            if raw != self._raw:
                header, _kdf, nonce, ciphertext = parse(raw, self._path)
                if header != self._header:
                    raise KeystoreLocked(
                        f"The keystore {self._path} was re-sealed with another passphrase since it was opened; "
                        "open it again."
                    )
                self._entries = open_content(header, file_key, nonce, ciphertext, self._path)
                self._raw = raw
            return self._entries

    def _mutate(self, change: Callable[[dict[str, Entry]], None]) -> None:
        with self._state_lock, exclusive_lock(self._lock_path):
            entries = dict(self._refresh())
            change(entries)
            raw = seal(self._header, self._unlocked_key(), entries, self._rng)
            atomic_write(self._path, raw)
            self._entries, self._raw = entries, raw

    def _add(self, key_id: str, key_type: KeyType, secret: bytes) -> None:
        check_key_id(key_id)
        entry = Entry(key_type, self._clock(), secret)

        def add(entries: dict[str, Entry]) -> None:
            if key_id in entries:
                raise Conflict(f"The key {key_id!r} already exists in the keystore {self._path}.")
            entries[key_id] = entry

        self._mutate(add)

    def _get(self, key_id: str, key_type: KeyType | None = None) -> Entry:
        check_key_id(key_id)
        entry = self._refresh().get(key_id)
        if entry is None:
            raise NotFound(f"There is no key {key_id!r} in the keystore {self._path}.")
        if key_type is not None and entry.key_type is not key_type:
            raise UsageError(
                f"The key {key_id!r} is a {ALGORITHMS[entry.key_type]} key, not a {ALGORITHMS[key_type]} key."
            )
        return entry

    # -- custody ---------------------------------------------------------------------------------

    def location(self, key_id: str) -> str:
        self._get(key_id)
        return f"{self._path}#{key_id}"

    def has(self, key_id: str) -> bool:
        check_key_id(key_id)
        return key_id in self._refresh()

    def key_ids(self) -> list[str]:
        return sorted(self._refresh())

    def key_info(self, key_id: str) -> KeyInfo:
        entry = self._get(key_id)
        return KeyInfo(
            key_id=key_id,
            key_type=entry.key_type,
            algorithm=ALGORITHMS[entry.key_type],
            created=entry.created,
            backend=self.backend,
            location=f"{self._path}#{key_id}",
        )

    def destroy(self, key_id: str) -> None:
        check_key_id(key_id)

        def remove(entries: dict[str, Entry]) -> None:
            if entries.pop(key_id, None) is None:
                raise NotFound(f"There is no key {key_id!r} in the keystore {self._path}.")

        self._mutate(remove)

    # -- signing ---------------------------------------------------------------------------------

    def create_signing_key(self, key_id: str) -> bytes:
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self._add(key_id, KeyType.SIGNING, raw)
        return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def import_signing_key(self, key_id: str, private_raw: bytes) -> bytes:
        """Bring in an existing Ed25519 key (32-byte raw seed), e.g. when migrating from another system.

        Returns the raw public key. Prefer ``create_signing_key``: an imported key has had custody
        outside this keystore, and whoever held it before may still hold a copy.
        """
        if not isinstance(private_raw, bytes) or len(private_raw) != 32:
            raise UsageError("An Ed25519 private key to import must be its 32-byte raw seed.")
        public = Ed25519PrivateKey.from_private_bytes(private_raw).public_key()
        self._add(key_id, KeyType.SIGNING, private_raw)
        return public.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, key_id: str, data: bytes) -> bytes:
        if not isinstance(data, bytes):
            raise UsageError("The data to sign must be bytes.")
        entry = self._get(key_id, KeyType.SIGNING)
        return Ed25519PrivateKey.from_private_bytes(entry.secret).sign(data)

    def public_key(self, key_id: str) -> bytes:
        entry = self._get(key_id, KeyType.SIGNING)
        public = Ed25519PrivateKey.from_private_bytes(entry.secret).public_key()
        return public.public_bytes(Encoding.Raw, PublicFormat.Raw)

    # -- age -------------------------------------------------------------------------------------

    def create_age_identity(self, key_id: str) -> str:
        identity = pyrage.x25519.Identity.generate()
        self._add(key_id, KeyType.AGE, str(identity).encode("ascii"))
        return str(identity.to_public())

    def age_identity(self, key_id: str) -> str:
        return self._get(key_id, KeyType.AGE).secret.decode("ascii")

    def age_recipient(self, key_id: str) -> str:
        return str(pyrage.x25519.Identity.from_str(self.age_identity(key_id)).to_public())

    # -- key wrapping ----------------------------------------------------------------------------

    def create_kek(self, key_id: str) -> None:
        self._add(key_id, KeyType.KEK, random_bytes(self._rng, KEK_BYTES))

    def wrap(self, kek_id: str, dek: bytes, aad: bytes) -> bytes:
        return wrap_key(self._get(kek_id, KeyType.KEK).secret, dek, aad, self._rng)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        return unwrap_key(self._get(kek_id, KeyType.KEK).secret, wrapped, aad)
