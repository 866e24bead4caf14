"""The on-disk format of the file keystore (see ``filekeystore`` for the keystore itself).

One JSON file (UTF-8) per organisation::

    {"format": "civicshare-keystore", "version": 1,
     "kdf": {"algorithm": "argon2id", "memory_kib": ..., "iterations": ..., "lanes": ..., "salt": b64},
     "cipher": "AES-256-GCM",
     "check": b64,        # proves the passphrase right before decrypting (see below)
     "nonce": b64,        # fresh for every write
     "ciphertext": b64}

Argon2id(passphrase, kdf) gives a 32-byte master secret; HKDF-Expand (SHA-256) turns it into the
AES-256-GCM file key and, separately, the ``check`` value. A wrong passphrase fails the ``check``
(constant-time compare, in ``filekeystore``) and raises ``KeystoreLocked``; a right passphrase with a
damaged ciphertext raises ``IntegrityError`` -- so an IT officer is told which of the two happened.
(A tampered header also fails the check, and so reads as a wrong passphrase.) The GCM associated
data is the canonical JSON of the header (format, version, kdf, cipher, check), so none of it can
be altered unnoticed. The ciphertext holds the JSON ``{"version": 1, "keys": {id: {"type",
"created", "secret": b64}}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from civicshare.crypto.kdf import KdfParams, passphrase_bytes
from civicshare.crypto.keystore import KeyType, check_key_id
from civicshare.crypto.randomness import Rng, random_bytes
from civicshare.crypto.wrapping import KEK_BYTES
from civicshare.errors import ConfigError, IntegrityError, UsageError

FORMAT = "civicshare-keystore"
VERSION = 1
CIPHER = "AES-256-GCM"
CONTENT_VERSION = 1
NONCE_BYTES = 12
MAX_FILE_BYTES = 16 * 1024 * 1024
_FILE_FIELDS = {"format", "version", "kdf", "cipher", "check", "nonce", "ciphertext"}
_HEADER_FIELDS = ("format", "version", "kdf", "cipher", "check")
_SECRET_BYTES = {KeyType.SIGNING: 32, KeyType.KEK: KEK_BYTES}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Entry:
    key_type: KeyType
    created: datetime
    secret: bytes


def derive_keys(passphrase: str, kdf: KdfParams) -> tuple[bytes, bytes]:
    """(file key, check value) from the passphrase."""
    master = kdf.derive(passphrase_bytes(passphrase), 32)
    file_key = HKDFExpand(hashes.SHA256(), 32, b"civicshare-keystore v1 file key").derive(master)
    check = HKDFExpand(hashes.SHA256(), 32, b"civicshare-keystore v1 passphrase check").derive(master)
    return file_key, check


def make_header(kdf: KdfParams, check: bytes) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "kdf": kdf.to_json(), "cipher": CIPHER, "check": b64(check)}


def _aad(header: dict[str, Any]) -> bytes:
    canonical = json.dumps({k: header[k] for k in _HEADER_FIELDS}, sort_keys=True, separators=(",", ":"))
    return canonical.encode("ascii")


def seal(header: dict[str, Any], file_key: bytes, entries: dict[str, Entry], rng: Rng) -> bytes:
    content = {
        "version": CONTENT_VERSION,
        "keys": {
            key_id: {"type": e.key_type.value, "created": e.created.isoformat(), "secret": b64(e.secret)}
            for key_id, e in sorted(entries.items())
        },
    }
    nonce = random_bytes(rng, NONCE_BYTES)
    ciphertext = AESGCM(file_key).encrypt(nonce, json.dumps(content).encode("utf-8"), _aad(header))
    document = dict(header, nonce=b64(nonce), ciphertext=b64(ciphertext))
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def parse(raw: bytes, path: Path) -> tuple[dict[str, Any], KdfParams, bytes, bytes]:
    """Check the outer format; returns (header, kdf, nonce, ciphertext)."""
    damaged = f"The keystore {path} is damaged"
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IntegrityError(f"{damaged}: it is not valid JSON.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a civicshare keystore.")
    if doc.get("version") != VERSION:
        raise ConfigError(
            f"The keystore {path} has format version {doc.get('version')!r}; this civicshare reads only "
            f"version {VERSION}. Use the civicshare release that wrote it."
        )
    if set(doc) != _FILE_FIELDS or doc["cipher"] != CIPHER:
        raise IntegrityError(f"{damaged}: its fields are not those of a version {VERSION} keystore.")
    try:
        kdf = KdfParams.from_json(doc["kdf"])
        unb64(doc["check"])
        nonce = unb64(doc["nonce"])
        ciphertext = unb64(doc["ciphertext"])
    except (UsageError, ValueError, binascii.Error) as exc:
        raise IntegrityError(f"{damaged}: {getattr(exc, 'message', exc)}") from None
    if len(nonce) != NONCE_BYTES:
        raise IntegrityError(f"{damaged}: its nonce has the wrong length.")
    return {k: doc[k] for k in _HEADER_FIELDS}, kdf, nonce, ciphertext


def open_content(
    header: dict[str, Any], file_key: bytes, nonce: bytes, ciphertext: bytes, path: Path
) -> dict[str, Entry]:
    try:
        plaintext = AESGCM(file_key).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        raise IntegrityError(
            f"The keystore {path} is damaged or has been tampered with: the passphrase is right but the "
            "contents do not check out. Restore it from a backup."
        ) from None
    try:
        content = json.loads(plaintext)
        if content["version"] != CONTENT_VERSION:
            raise ValueError(f"content version {content['version']!r}")
        entries = {}
        for key_id, item in content["keys"].items():
            key_type = KeyType(item["type"])
            secret = unb64(item["secret"])
            if len(secret) != _SECRET_BYTES.get(key_type, len(secret)):
                raise ValueError(f"key {key_id!r} has the wrong length")
            if key_type is KeyType.AGE and not secret.startswith(b"AGE-SECRET-KEY-1"):
                raise ValueError(f"key {key_id!r} is not an age identity")
            entries[check_key_id(key_id)] = Entry(key_type, datetime.fromisoformat(item["created"]), secret)
    except (ValueError, KeyError, TypeError, AttributeError, UsageError) as exc:
        raise IntegrityError(f"The keystore {path} has unreadable contents ({exc}).") from None
    return entries


def read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"There is no keystore at {path}.") from None
    if len(raw) > MAX_FILE_BYTES:
        raise IntegrityError(f"The keystore {path} is larger than any keystore could be; it is not one.")
    return raw
