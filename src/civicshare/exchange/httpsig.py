"""HTTP message signatures (RFC 9421) on node-to-node requests, through ``http_message_signatures``.

The sending organisation signs ``"@method" "@target-uri" "content-digest"`` with its Ed25519 signing
key, under label ``sig1`` with ``alg="ed25519"``, ``keyid`` = its organisation id, ``tag="civicshare"``,
``created`` and a random ``nonce``. ``Content-Digest`` (RFC 9530) is always sent, also for an empty
body, so the body is always covered. The keystore never hands out private keys, so signing goes
through a ``sign(data) -> signature`` callable; the time is injected, never read from the system.

Replay protection (remembering nonces) is the caller's part: see ``civicshare.exchange.nonces``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
    InvalidSignature,
)

if TYPE_CHECKING:  # httpx is slow to import and only the sender builds requests
    import httpx

from civicshare.clock import Rng
from civicshare.errors import CivicshareError, DigestMismatch, SignatureRefused, UsageError
from civicshare.exchange.signed import PUBLIC_KEY_SIZE, SIGNATURE_SIZE

SIGNATURE_TAG = "civicshare"
SIGNATURE_LABEL = "sig1"
ALGORITHM_ID = "ed25519"
COVERED = ("@method", "@target-uri", "content-digest")
SHA256_BYTES = 32
MAX_SKEW = timedelta(minutes=5)
NONCE_TTL = timedelta(minutes=10)
NONCE_BYTES = 16
_PARAMETERS = {"created", "keyid", "alg", "nonce", "tag"}
# 128 random bits in base32 are 26 characters; anything shorter cannot carry enough randomness.
_NONCE_RE = re.compile(r"[A-Za-z0-9_=+/-]{16,100}")
_KEYID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class SignedRequest:
    """What a verified request proves: who signed it, with which nonce, and when."""

    sender: str
    nonce: str
    created: datetime
    # The SHA-256 of the body, from the signed Content-Digest the gate checked it against, so a receiver
    # need not hash a large body again; None if the digest carries no sha-256 member.
    body_sha256: bytes | None = None


def new_nonce(rng: Rng) -> str:
    """A fresh request nonce: 128 random bits in lower-case base32, without padding."""
    return base64.b32encode(rng(NONCE_BYTES)).decode("ascii").rstrip("=").lower()


class _KeystoreEd25519(HTTPSignatureAlgorithm):
    """Ed25519 whose private half stays in the keystore: ``private_key`` is a Signer callable."""

    algorithm_id = ALGORITHM_ID

    def __init__(self, public_key: Any = None, private_key: Any = None) -> None:
        self._sign: Signer | None = private_key
        self._public: Ed25519PublicKey | None = public_key

    def sign(self, message: bytes) -> bytes:
        assert self._sign is not None
        signature = self._sign(message)
        if len(signature) != SIGNATURE_SIZE:
            raise UsageError(f"An Ed25519 signature is {SIGNATURE_SIZE} bytes, not {len(signature)}.")
        return signature

    def verify(self, signature: bytes, message: bytes) -> None:
        assert self._public is not None
        self._public.verify(signature, message)


class _Headers:
    """A read-only view of received header field lines, in the shape the library reads."""

    def __init__(self, lines: Iterable[tuple[str, str]]) -> None:
        self._lines = list(lines)

    def items(self) -> Iterable[tuple[str, str]]:
        return list(self._lines)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._lines)

    def __setitem__(self, name: str, value: str) -> None:
        raise TypeError("received headers are read-only")

    def __delitem__(self, name: str) -> None:
        raise TypeError("received headers are read-only")

    def get(self, name: str) -> str | None:
        values = [v for n, v in self._lines if n.lower() == name.lower()]
        return ", ".join(v.strip(" \t") for v in values) if values else None


@dataclass
class _Message:
    method: str
    url: str
    headers: _Headers


def sign_request(request: httpx.Request, *, sender: str, sign: Signer, now: datetime, nonce: str,
                 body_sha256: bytes | None = None) -> None:
    """Add Content-Digest, Signature-Input and Signature to ``request``, signed as ``sender``.

    ``body_sha256`` is the body's SHA-256 when the caller already has it (a part of a sealed payload,
    hashed when it was sealed), so a large body is not hashed again; the recipient checks it anyway.
    """
    if not _NONCE_RE.fullmatch(nonce):
        raise UsageError("A request nonce is 16 to 100 base32 or base64 characters.")
    for name in ("content-digest", "signature-input", "signature"):
        request.headers.pop(name, None)
    signer = HTTPMessageSigner(signature_algorithm=_KeystoreEd25519)
    if body_sha256 is None:
        prepared = signer.prepare(request, key_id=sender, created=now, nonce=nonce, label=SIGNATURE_LABEL,
                                  tag=SIGNATURE_TAG, covered_component_ids=COVERED[:2], body=request.read())
    else:
        if len(body_sha256) != SHA256_BYTES:
            raise UsageError("A body's SHA-256 is 32 bytes.")
        request.headers["Content-Digest"] = http_sf.ser({"sha-256": body_sha256})
        prepared = signer.prepare(request, key_id=sender, created=now, nonce=nonce, label=SIGNATURE_LABEL,
                                  tag=SIGNATURE_TAG, covered_component_ids=COVERED, use_existing_digest=True)
    signer.apply(request, prepared, _KeystoreEd25519(private_key=sign).sign(prepared.signature_base))


def claimed_sender(headers: Iterable[tuple[str, str]]) -> str | None:
    """The ``keyid`` a request's signature claims, unverified (for the audit log), or None."""
    value = _Headers(headers).get("signature-input")
    if value is None:
        return None
    try:
        parsed = http_sf.parse(value.encode("latin-1"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    member: Any = parsed.get(SIGNATURE_LABEL) if isinstance(parsed, dict) else None
    if not isinstance(member, tuple) or len(member) != 2 or not isinstance(member[1], dict):
        return None
    keyid = member[1].get("keyid")
    return keyid if isinstance(keyid, str) and _KEYID_RE.fullmatch(keyid) else None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Verifier(HTTPMessageVerifier):
    """The library's verifier held to exactly our profile, with the time check on injected time."""

    def __init__(self, now: datetime, resolver: HTTPSignatureKeyResolver) -> None:
        super().__init__(signature_algorithm=_KeystoreEd25519, key_resolver=resolver)
        self.now = now

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        # The library calls this first for each signature, before it resolves any key: the place to
        # refuse anything outside our profile without touching the database.
        params = dict(sig_input.params)
        missing = sorted(_PARAMETERS - set(params))
        if missing:
            raise SignatureRefused("The request's signature lacks " + ", ".join(missing) + "; a civicshare node "
                                   "signs with created, keyid, alg, nonce and tag.")
        extra = sorted(set(params) - _PARAMETERS)
        if extra:
            raise SignatureRefused("The request's signature has parameters a civicshare node does not use: "
                                   + ", ".join(extra) + ".")
        if params["alg"] != ALGORITHM_ID:
            raise SignatureRefused(f"The request is signed with {params['alg']!r}; only ed25519 is accepted.")
        covered = [(item.value, dict(item.params)) for item in sig_input]
        if covered != [(c, {}) for c in COVERED]:
            raise SignatureRefused('The request\'s signature must cover exactly "@method" "@target-uri" '
                                   '"content-digest".')
        if not isinstance(params["nonce"], str) or not _NONCE_RE.fullmatch(params["nonce"]):
            raise SignatureRefused("The request's signature nonce is missing or too short.")
        created = params["created"]
        if type(created) is not int:
            raise SignatureRefused("The request's signature time (created) is not a whole number of seconds.")
        try:
            moment = datetime.fromtimestamp(created, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise SignatureRefused("The request's signature time (created) is not a real time.") from None
        if moment < self.now - MAX_SKEW:
            raise SignatureRefused(f"The request was signed at {_when(moment)}, more than 5 minutes before this "
                                   f"node's time ({_when(self.now)}): it is stale or replayed, or a clock is "
                                   "wrong.")
        if moment > self.now + MAX_SKEW:
            raise SignatureRefused(f"The request was signed for {_when(moment)}, more than 5 minutes after this "
                                   f"node's time ({_when(self.now)}); check both clocks.")


class _Resolver(HTTPSignatureKeyResolver):
    def __init__(self, public_key_for: Callable[[str], bytes]) -> None:
        self.public_key_for = public_key_for

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        raw = self.public_key_for(key_id)
        if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_SIZE:
            raise SignatureRefused(f"No usable Ed25519 signing key is known for {key_id}.")
        return Ed25519PublicKey.from_public_bytes(raw)

    def resolve_private_key(self, key_id: str) -> Any:
        raise UsageError("Verification never needs a private key.")


def verify_request(*, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes, now: datetime,
                   public_key_for: Callable[[str], bytes]) -> SignedRequest:
    """Check a received request's signature and digest; returns who signed it.

    SignatureRefused when the signature is missing, malformed, outside our profile, stale, from the
    future or forged; DigestMismatch when the body is not the one signed. UnknownSender and
    PartnerRevoked raised by ``public_key_for`` pass through unchanged.
    """
    view = _Headers(headers)
    absent = [name for name in ("Signature-Input", "Signature", "Content-Digest") if name not in view]
    if absent:
        raise SignatureRefused("The request is not signed as node-to-node requests must be: it has no "
                               + " or ".join(absent) + " header.")
    message = _Message(method, url, view)
    verifier = _Verifier(now, _Resolver(public_key_for))
    sender = claimed_sender(view.items()) or "the sender"
    try:
        results = verifier.verify(message, max_age=None, expect_tag=SIGNATURE_TAG, expect_label=SIGNATURE_LABEL,
                                  require_components=COVERED)
    except CivicshareError:
        raise
    except InvalidSignature as exc:
        cause = exc.__cause__
        if isinstance(cause, CivicshareError):
            raise cause from None
        if cause is not None and type(cause).__name__ == "InvalidSignature":
            # cryptography's InvalidSignature: the signature is well formed but made for other bytes.
            raise SignatureRefused(f"The request's signature does not verify with the signing key of {sender}: "
                                   "the request was changed on the way, or signed with another key.") from None
        raise SignatureRefused(f"The request's signature cannot be checked: {_detail(exc)}") from None
    except HTTPMessageSignaturesException as exc:
        raise SignatureRefused(f"The request's signature cannot be checked: {_detail(exc)}") from None
    if len(results) != 1:
        raise SignatureRefused("The request carries more than one civicshare signature.")
    result = results[0]
    try:
        if not ContentDigest.verify_components(result.covered_components, body):
            raise SignatureRefused("The request's signature does not cover its Content-Digest.")
    except InvalidSignature as exc:
        if "does not match" in str(exc):
            raise DigestMismatch("The request body is not the one that was signed (its SHA-256 digest differs "
                                 "from the signed Content-Digest): it was changed or cut short on the way.") from None
        raise SignatureRefused(f"The request's Content-Digest cannot be checked: {_detail(exc)}") from None
    params = result.parameters
    keyid, nonce, created = params["keyid"], params["nonce"], params["created"]
    assert isinstance(keyid, str) and isinstance(nonce, str) and isinstance(created, int)
    return SignedRequest(keyid, nonce, datetime.fromtimestamp(created, tz=UTC),
                         _signed_sha256(result.covered_components))


def _signed_sha256(covered: Mapping[str, str]) -> bytes | None:
    """The sha-256 member of the signed Content-Digest (already checked against the body), if any."""
    value = next((v for k, v in covered.items() if k.strip('"') == "content-digest"), None)
    if value is None:
        return None
    def duplicate(_name: str, _context: str) -> None:
        raise ValueError("duplicate member")

    try:
        members = http_sf.parse(value.encode("latin-1"), tltype="dictionary", on_duplicate_key=duplicate)
    except (ValueError, TypeError, UnicodeEncodeError):
        return None  # the caller hashes the body itself
    member = members.get("sha-256") if isinstance(members, dict) else None
    if isinstance(member, tuple) and isinstance(member[0], bytes) and len(member[0]) == SHA256_BYTES:
        return member[0]
    return None


def _detail(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if text.endswith(".") else text + "."
