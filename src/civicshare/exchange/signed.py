"""Signed JSON documents: cards now, manifests, receipts and directories later.

A document is ``{"civicshare": KIND, "version": 1, "body": {...}, "signature": {...}}``. The Ed25519
signature covers ``civicshare/KIND/v1`` and a newline, then the canonical JSON of the body, so a
signature made for one kind of document (or version) can never be passed off as another. The
document's own layout (indentation, key order) does not matter; only the body's canonical bytes do.

The signature object may name the signing key (``key``), as a hint for choosing among an
organisation's keys. The hint is not signed: the verifier decides which key to check against.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicshare.canonical import canonical_json
from civicshare.errors import InvalidInput, SecurityError, UsageError

DOCUMENT_VERSION = 1
ALGORITHM = "Ed25519"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
# Kinds go into the signed prefix, so nothing that could end or fake it: no slash, no newline.
KIND_RE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_TOP_FIELDS = {"civicshare", "version", "body", "signature"}
_SIGNATURE_FIELDS = {"alg", "key", "value"}

Signer = Callable[[bytes], bytes]


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise UsageError(f"{kind!r} is not a document kind: use lower-case letters, digits and hyphens.")
    return kind


def signing_input(kind: str, body: dict[str, Any], version: int = DOCUMENT_VERSION) -> bytes:
    """The exact bytes signed: the domain prefix, then the body's canonical JSON."""
    return f"civicshare/{_check_kind(kind)}/v{version}\n".encode("ascii") + canonical_json(body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: object, what: str) -> bytes:
    """Standard padded base64 in its one canonical spelling; InvalidInput otherwise."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be base64 text.")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base64.") from None
    # Non-canonical trailing bits would give one value several spellings.
    if b64(raw) != text:
        raise InvalidInput(f"{what} is not canonical base64.")
    return raw


def sign_document(kind: str, body: dict[str, Any], key_id_hint: str, sign: Signer) -> dict[str, Any]:
    """Sign ``body`` as a document of ``kind`` through ``sign`` (the keystore holds the private key)."""
    if not isinstance(body, dict):
        raise UsageError("A document body is a JSON object.")
    signature = sign(signing_input(kind, body))
    if len(signature) != SIGNATURE_SIZE:
        raise UsageError(f"An Ed25519 signature is {SIGNATURE_SIZE} bytes, not {len(signature)}.")
    return {"civicshare": kind, "version": DOCUMENT_VERSION, "body": body,
            "signature": {"alg": ALGORITHM, "key": key_id_hint, "value": b64(signature)}}


def document_body(kind: str, document: object) -> dict[str, Any]:
    """Check the document's shape and return its body, unverified (to find the key to verify with).

    InvalidInput when it is not a version 1 document of ``kind``.
    """
    _check_kind(kind)
    if not isinstance(document, dict):
        raise InvalidInput(f"A signed {kind} is a JSON object.")
    declared = document.get("civicshare")
    if declared is None:
        raise InvalidInput(f"This is not a civicshare signed document (no 'civicshare' field); expected a {kind}.")
    if declared != kind:
        raise InvalidInput(f"This is a civicshare {declared!r} document, not a {kind}.")
    version = document.get("version")
    if type(version) is not int or version != DOCUMENT_VERSION:
        raise InvalidInput(f"This {kind} is version {version!r}; this node reads version {DOCUMENT_VERSION}.")
    extra = sorted(set(document) - _TOP_FIELDS)
    if extra:
        # Anything outside the body is unsigned, so nothing unexpected may ride along.
        raise InvalidInput(f"This {kind} has fields a version {DOCUMENT_VERSION} document does not: "
                           + ", ".join(extra) + ".")
    body = document.get("body")
    if not isinstance(body, dict):
        raise InvalidInput(f"The body of this {kind} is missing or not a JSON object.")
    return body


def _signature_value(kind: str, document: dict[str, Any]) -> bytes:
    sig = document.get("signature")
    if not isinstance(sig, dict):
        raise InvalidInput(f"This {kind} has no signature.")
    extra = sorted(set(sig) - _SIGNATURE_FIELDS)
    if extra:
        raise InvalidInput(f"The signature of this {kind} has unknown fields: " + ", ".join(extra) + ".")
    if sig.get("alg") != ALGORITHM:
        raise InvalidInput(f"The signature of this {kind} uses {sig.get('alg')!r}; only {ALGORITHM} is accepted.")
    if "key" in sig and not isinstance(sig["key"], str):
        raise InvalidInput(f"The key hint in the signature of this {kind} must be text.")
    value = b64decode_strict(sig.get("value"), f"The signature of this {kind}")
    if len(value) != SIGNATURE_SIZE:
        raise InvalidInput(f"The signature of this {kind} is {len(value)} bytes; Ed25519 signatures are "
                           f"{SIGNATURE_SIZE}.")
    return value


def verify_document(kind: str, document: object, public_key: bytes) -> dict[str, Any]:
    """Return the body of a document of ``kind`` signed by ``public_key``.

    InvalidInput when the document is malformed, of another kind or an unknown version; SecurityError
    when the signature does not verify with this key.
    """
    body = document_body(kind, document)
    assert isinstance(document, dict)
    value = _signature_value(kind, document)
    message = signing_input(kind, body)
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInput(f"An Ed25519 public key is {PUBLIC_KEY_SIZE} bytes.")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(value, message)
    except (InvalidSignature, ValueError):
        raise SecurityError(f"The signature on this {kind} does not verify: it was changed after signing, "
                            "or signed with another key.") from None
    return body
