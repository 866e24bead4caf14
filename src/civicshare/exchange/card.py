"""Organisation cards: an organisation's signed public identity.

A card names the organisation, where its node answers, its Ed25519 signing key, the age recipient
partners seal packages to, the key its audit checkpoints verify with, and how long all that holds.
A card is signed by the key it carries: that proves the holder has the key, not who they are. Trust
comes from pinning the card by hand after checking it with the organisation (or, later, from a
directory the node trusts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from civicshare.audit.log import origin_for
from civicshare.audit.note import parse_verifier_key
from civicshare.canonical import canonical_json, parse_json
from civicshare.config import check_org_id
from civicshare.errors import InvalidInput, Problem, SecurityError, TooLarge, UsageError
from civicshare.exchange.fields import age_recipient_text, doc_time, parse_time
from civicshare.exchange.signed import (
    PUBLIC_KEY_SIZE,
    Signer,
    b64,
    b64decode_strict,
    document_body,
    sign_document,
    verify_document,
)

CARD = "card"
MAX_CARD_BYTES = 64 * 1024
CARD_VALIDITY = timedelta(days=365)
MAX_NAME = 200
MAX_ENDPOINT = 500
# Clocks of two councils' servers disagree a little; a card "issued" further ahead than this is refused.
CLOCK_SKEW = timedelta(minutes=5)
KEY_PREFIX = "ed25519:"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = ("org_id", "name", "endpoint", "signing_key", "age_recipient", "audit_verifier_key", "issued",
           "valid_until")


card_time = doc_time  # the one spelling of times in signed documents


def key_text(public_key: bytes) -> str:
    """How cards, the partner table and the audit log write a signing key: ``ed25519:<base64>``."""
    return KEY_PREFIX + b64(public_key)


def parse_key_text(text: object, what: str = "signing_key") -> bytes:
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise InvalidInput(f"{what} must be written ed25519:<base64 of the 32-byte key>.")
    raw = b64decode_strict(text.removeprefix(KEY_PREFIX), what)
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidInput(f"{what} is {len(raw)} bytes; an Ed25519 public key is {PUBLIC_KEY_SIZE}.")
    return raw


@dataclass(frozen=True)
class Card:
    org_id: str
    name: str
    endpoint: str | None
    signing_key: bytes
    age_recipient: str
    audit_verifier_key: str
    issued: datetime
    valid_until: datetime

    def to_body(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id, "name": self.name, "endpoint": self.endpoint,
            "signing_key": key_text(self.signing_key), "age_recipient": self.age_recipient,
            "audit_verifier_key": self.audit_verifier_key, "issued": card_time(self.issued),
            "valid_until": card_time(self.valid_until),
        }

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Card:
        """Check every field; InvalidInput lists each fault with its field name."""
        problems: list[Problem] = []

        def field(name: str, check: Any) -> Any:
            try:
                return check(body.get(name))
            except (InvalidInput, UsageError) as exc:
                problems.append(Problem(exc.message, field=name))
                return None

        missing = [f for f in _FIELDS if f not in body]
        extra = sorted(set(body) - set(_FIELDS))
        for name in missing:
            problems.append(Problem("is missing", field=name))
        for name in extra:
            problems.append(Problem("is not a field of a version 1 card", field=name))
        org_id = field("org_id", _org_id)
        name = field("name", _name)
        endpoint = field("endpoint", _endpoint)
        signing_key = field("signing_key", parse_key_text)
        age_recipient = field("age_recipient", age_recipient_text)
        verifier = field("audit_verifier_key", _verifier_key)
        issued = field("issued", parse_time)
        valid_until = field("valid_until", parse_time)
        if not problems:
            # The checkpoint key must be this organisation's, and the very key the card carries.
            if verifier[0] != origin_for(org_id) or verifier[1] != signing_key:
                problems.append(Problem(f"is not the verifier key of {origin_for(org_id)} with this card's "
                                        "signing key", field="audit_verifier_key"))
            if valid_until <= issued:
                problems.append(Problem("is not after the time the card was issued", field="valid_until"))
        if problems:
            raise InvalidInput("This card is not a valid civicshare card", problems=problems)
        return cls(org_id, name, endpoint, signing_key, age_recipient, body["audit_verifier_key"], issued,
                   valid_until)


def _org_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput("must be text")
    return check_org_id(value)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be the organisation's name")
    if len(value) > MAX_NAME or _CONTROL.search(value) or value != value.strip():
        raise InvalidInput(f"must be one line of at most {MAX_NAME} characters, without spaces at either end")
    return value


def _endpoint(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise InvalidInput("must be null or an http(s) URL without query or fragment")
    if len(value) > MAX_ENDPOINT:
        raise InvalidInput(f"is longer than {MAX_ENDPOINT} characters")
    return value


def _verifier_key(value: object) -> tuple[str, bytes]:
    if not isinstance(value, str):
        raise InvalidInput("must be a verifier key <name>+<key hash>+<key>")
    try:
        return parse_verifier_key(value)
    except UsageError as exc:
        raise InvalidInput(exc.message) from None


def make_card(card: Card, key_id_hint: str, sign: Signer) -> dict[str, Any]:
    """Sign ``card`` and return the document; checks the result reads back before handing it out."""
    document = sign_document(CARD, card.to_body(), key_id_hint, sign)
    parse_card(canonical_json(document).decode("utf-8"), now=card.issued)
    return document


def parse_card(text: str | bytes, *, now: datetime) -> tuple[Card, dict[str, Any]]:
    """Read a signed card and verify it with the key it carries; returns the card and the document.

    InvalidInput when malformed, SecurityError when the signature does not verify, or the card has
    expired or is not valid yet at ``now``.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
    if size > MAX_CARD_BYTES:
        raise TooLarge(f"This card is {size:,} bytes; a card is never more than {MAX_CARD_BYTES:,}.")
    document = parse_json(text)
    body = document_body(CARD, document)
    card = Card.from_body(body)
    verify_document(CARD, document, card.signing_key)
    if now >= card.valid_until:
        raise SecurityError(f"The card of {card.name} ({card.org_id}) expired on {card_time(card.valid_until)}; "
                            "ask them for a new one (civicshare card).")
    if card.issued > now + CLOCK_SKEW:
        raise SecurityError(f"The card of {card.name} ({card.org_id}) is issued for {card_time(card.issued)}, "
                            "which is still in the future; check both clocks.")
    return card, document
