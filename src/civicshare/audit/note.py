"""C2SP signed notes (https://c2sp.org/signed-note) and tlog checkpoints (https://c2sp.org/tlog-checkpoint).

Only Ed25519 keys (signature type 0x01) are supported. Signing goes through a caller-supplied ``sign``
function, so the private key stays in the keystore; this module checks every signature it produces
against the named public key before handing the note out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicshare.errors import IntegrityError, UsageError

ED25519 = 0x01
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
KEY_HASH_SIZE = 4
HASH_SIZE = 32
# The spec asks verifiers to cap the signature count and to accept at least 16; Go's reference uses 100.
MAX_SIGNATURES = 100
# Tree sizes are uint64 in RFC 9162; the cap also bounds the work of parsing the decimal.
MAX_TREE_SIZE = 2**64 - 1

# Every signature line opens with an em dash and a space.
SIG_PREFIX = "\u2014 "

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_HASH_HEX = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")

Signer = Callable[[bytes], bytes]


# Names, keys and encodings ---------------------------------------------------------------------------


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Only lone surrogates fail here; they cannot be written as UTF-8 at all.
        raise UsageError(f"{what} is not valid UTF-8 text.") from None


def _check_text(text: object, what: str) -> bytes:
    """Enforce the signed-note character rules on ``text`` and return its UTF-8 encoding."""
    if not isinstance(text, str):
        raise UsageError(f"{what} must be text.")
    if _CONTROL.search(text):
        raise UsageError(f"{what} contains a control character other than newline.")
    return _utf8(text, what)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise UsageError("A key name must be non-empty text.")
    if "+" in name or any(ch.isspace() for ch in name):
        raise UsageError(f"The key name {name!r} contains a space or a plus sign.")
    _check_text(name, "The key name")
    return name


def _check_public_key(public_key: object) -> bytes:
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != PUBLIC_KEY_SIZE:
        raise UsageError(f"An Ed25519 public key is {PUBLIC_KEY_SIZE} bytes.")
    return bytes(public_key)


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: padded, no stray characters, and only the canonical encoding."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not valid base64.") from None
    # Non-canonical trailing bits would give one value several spellings.
    if base64.b64encode(raw).decode("ascii") != text:
        raise UsageError(f"{what} is not canonical base64.")
    return raw


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID: the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public_key)."""
    name = _check_name(name)
    public_key = _check_public_key(public_key)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public_key).digest()[:KEY_HASH_SIZE]


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key partners pin: ``<name>+<8 hex of key hash>+<base64(0x01 || public_key)>``."""
    digest = key_hash(name, public_key)
    encoded = base64.b64encode(bytes([ED25519]) + bytes(public_key)).decode("ascii")
    return f"{name}+{digest.hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """Parse a verifier key into ``(name, public_key)``.

    Strict: the name must be valid, the key hash exactly 8 lowercase hex digits matching the key, the
    key canonical base64 of 0x01 followed by 32 bytes. Anything else raises UsageError.
    """
    if not isinstance(text, str):
        raise UsageError("A verifier key must be text.")
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise UsageError("A verifier key has the form <name>+<key hash>+<key>.")
    name, hash_hex, encoded = parts
    _check_name(name)
    if not _KEY_HASH_HEX.fullmatch(hash_hex):
        raise UsageError("The key hash in a verifier key must be 8 lowercase hex digits.")
    raw = _b64decode(encoded, "The key in the verifier key")
    if not raw or raw[0] != ED25519:
        raise UsageError("The verifier key is not an Ed25519 key.")
    public_key = _check_public_key(raw[1:])
    if key_hash(name, public_key) != bytes.fromhex(hash_hex):
        raise UsageError(f"The key hash in the verifier key for {name!r} does not match its key.")
    return name, public_key


def _verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise UsageError("The public key is not a valid Ed25519 key.") from None
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# Signed notes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes
    line: str


def _parse(note: str) -> tuple[str, list[_SignatureLine]]:
    """Split a signed note into its text and signature lines; UsageError if it is malformed."""
    _check_text(note, "The signed note")
    # The text ends at the last blank line; signature lines are never empty, so this is unambiguous.
    split = note.rfind("\n\n")
    if split < 0:
        raise UsageError("The signed note has no blank line before its signatures.")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise UsageError("The signed note has no signature lines, or its last line is unterminated.")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise UsageError(f"The signed note has more than {MAX_SIGNATURES} signatures.")
    parsed = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise UsageError("A signature line in the note does not start with an em dash and a space.")
        name, space, encoded = line[len(SIG_PREFIX) :].partition(" ")
        if not space:
            raise UsageError("A signature line in the note has no signature after the key name.")
        _check_name(name)
        raw = _b64decode(encoded, f"The signature by {name!r}")
        if len(raw) <= KEY_HASH_SIZE:
            raise UsageError(f"The signature by {name!r} is too short.")
        parsed.append(_SignatureLine(name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:], line))
    return text, parsed


def _check_note_text(text: str) -> bytes:
    message = _check_text(text, "The note text")
    if not text.endswith("\n"):
        raise UsageError("The note text must end with a newline.")
    return message


def _signature_line(text: bytes, name: str, public_key: bytes, sign: Signer) -> str:
    """Sign ``text`` through ``sign`` and return the signature line, after checking the signature."""
    digest = key_hash(name, public_key)
    signature = sign(text)
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_SIZE:
        raise IntegrityError(f"The signer for {name!r} did not return a {SIGNATURE_SIZE}-byte Ed25519 signature.")
    signature = bytes(signature)
    # A keystore signing with some other key would otherwise publish a note nobody can verify.
    if not _verify(public_key, signature, text):
        raise IntegrityError(f"The signature made for {name!r} does not verify with its public key.")
    return f"{SIG_PREFIX}{name} {base64.b64encode(digest + signature).decode('ascii')}\n"


def sign_note(text: str, name: str, public_key: bytes, sign: Signer) -> str:
    """Sign ``text`` as key ``name`` and return the signed note.

    ``text`` must end with a newline, be valid UTF-8, and contain no control characters but newline (it
    may contain blank lines; the last one in a note separates text from signatures). ``sign`` makes a raw
    Ed25519 signature over the UTF-8 text; it is checked against ``public_key`` before the note is
    returned (IntegrityError if it does not verify). Malformed text, names or keys raise UsageError.
    """
    message = _check_note_text(text)
    name = _check_name(name)
    public_key = _check_public_key(public_key)
    return text + "\n" + _signature_line(message, name, public_key, sign)


def open_note(note: str, name: str, public_key: bytes) -> str:
    """Check ``note`` carries a valid signature by key (``name``, ``public_key``) and return its text.

    Signatures by other keys (a different name or key hash) are ignored. Every signature line claiming
    this key must verify. IntegrityError if one does not, or if there is none; UsageError if the note
    is malformed.
    """
    name = _check_name(name)
    public_key = _check_public_key(public_key)
    text, lines = _parse(note)
    digest = key_hash(name, public_key)
    ours = [line for line in lines if line.name == name and line.key_id == digest]
    if not ours:
        raise IntegrityError(f"The note has no signature by {name}+{digest.hex()}.")
    message = text.encode("utf-8")
    for line in ours:
        if len(line.signature) != SIGNATURE_SIZE or not _verify(public_key, line.signature, message):
            raise IntegrityError(f"The note's signature by {name}+{digest.hex()} does not verify.")
    return text


def add_signature(note: str, name: str, public_key: bytes, sign: Signer) -> str:
    """Add a signature by key ``name`` to an already signed ``note`` and return the new note.

    Existing signatures are kept in order and not checked; an existing line from the same key is
    replaced. The new signature is checked against ``public_key`` (IntegrityError if it fails).
    """
    name = _check_name(name)
    public_key = _check_public_key(public_key)
    text, lines = _parse(note)
    digest = key_hash(name, public_key)
    kept = [line.line + "\n" for line in lines if not (line.name == name and line.key_id == digest)]
    if len(kept) >= MAX_SIGNATURES:
        raise UsageError(f"A note may carry at most {MAX_SIGNATURES} signatures.")
    return text + "\n" + "".join(kept) + _signature_line(text.encode("utf-8"), name, public_key, sign)


# Checkpoints -----------------------------------------------------------------------------------------


def _check_line(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must be non-empty text.")
    if "\n" in value:
        raise UsageError(f"{what} must be a single line.")
    _check_text(value, what)
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint: the note text that a log signs for its tree head.

    ``origin`` names the log, ``size`` is the number of leaves, ``root_hash`` the RFC 9162 root at that
    size; ``extensions`` are optional further lines. Construction validates every field (UsageError).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "A checkpoint origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise UsageError(f"A checkpoint tree size must be an integer from 0 to {MAX_TREE_SIZE}.")
        if not isinstance(self.root_hash, bytes | bytearray) or len(self.root_hash) != HASH_SIZE:
            raise UsageError(f"A checkpoint root hash is {HASH_SIZE} bytes.")
        if isinstance(self.extensions, str):
            raise UsageError("Checkpoint extensions are a sequence of lines, not one string.")
        extensions = tuple(self.extensions)
        for extension in extensions:
            _check_line(extension, "A checkpoint extension line")
        # The dataclass is frozen; normalise the containers once, here.
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        object.__setattr__(self, "extensions", extensions)

    def body(self) -> str:
        """The note text: origin, size and base64 root, one per line, then any extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly; UsageError if it does not follow tlog-checkpoint.

        The size must be decimal without leading zeros, the root canonical base64 of 32 bytes, and every
        line (origin and extensions included) non-empty.
        """
        _check_text(text, "The checkpoint")
        if not text.endswith("\n"):
            raise UsageError("A checkpoint must end with a newline.")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise UsageError("A checkpoint has at least three lines: origin, tree size and root hash.")
        if not all(lines):
            raise UsageError("A checkpoint may not contain empty lines.")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise UsageError("The checkpoint tree size must be a decimal number without leading zeros.")
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise UsageError(f"The checkpoint tree size is larger than {MAX_TREE_SIZE}.")
        root_hash = _b64decode(root_text, "The checkpoint root hash")
        return cls(origin, size, root_hash, tuple(extensions))
