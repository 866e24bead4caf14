"""Cards on their own: fields, self-signature, validity window. Keys are real; no node needed."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyrage
import pytest

from civicshare.audit.note import verifier_key
from civicshare.errors import InvalidInput, SecurityError, TooLarge
from civicshare.exchange.card import Card, make_card, parse_card
from civicshare.exchange.signed import sign_document
from tests.exchange.test_signed import Key

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def new_card(org: str = "east-marsh", key: Key | None = None, **changes: Any) -> tuple[Card, Key]:
    key = key or Key()
    card = Card(org, "East Marsh District Council", "https://east-marsh.example/orgs/east-marsh", key.public,
                str(pyrage.x25519.Identity.generate().to_public()),
                verifier_key(f"civicshare/audit/{org}", key.public), T0, T0 + timedelta(days=365))
    return dataclasses.replace(card, **changes), key


def text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2)


def test_round_trip() -> None:
    card, key = new_card()
    document = make_card(card, "k_1", key.sign)
    body = document["body"]
    assert body["signing_key"].startswith("ed25519:") and body["issued"] == "2026-11-01T09:30:00Z"
    assert body["valid_until"] == "2027-11-01T09:30:00Z"
    parsed, again = parse_card(text(document), now=T0 + timedelta(days=30))
    assert parsed == card and again == document
    assert Card.from_body(card.to_body()) == card
    without_endpoint, key = new_card(endpoint=None)
    assert parse_card(text(make_card(without_endpoint, "k_1", key.sign)), now=T0)[0].endpoint is None


def test_expired_and_not_yet_valid_cards_are_refused() -> None:
    card, key = new_card()
    document = text(make_card(card, "k_1", key.sign))
    parse_card(document, now=card.valid_until - timedelta(seconds=1))
    with pytest.raises(SecurityError, match=r"East Marsh District Council \(east-marsh\) expired on "
                                            r"2027-11-01T09:30:00Z; ask them for a new one"):
        parse_card(document, now=card.valid_until)
    parse_card(document, now=T0 - timedelta(minutes=4))  # a little clock skew is tolerated
    with pytest.raises(SecurityError, match="still in the future"):
        parse_card(document, now=T0 - timedelta(hours=1))


def test_tampered_card_is_refused() -> None:
    card, key = new_card()
    document = make_card(card, "k_1", key.sign)
    document["body"]["name"] = "East Marsh District Council (payments)"
    with pytest.raises(SecurityError, match="does not verify"):
        parse_card(text(document), now=T0)


def test_a_card_carrying_one_key_but_signed_with_another_is_refused() -> None:
    card, _key = new_card()
    impostor = Key()
    document = sign_document("card", card.to_body(), "k_1", impostor.sign)
    with pytest.raises(SecurityError, match="does not verify"):
        parse_card(text(document), now=T0)


def _signed_body(changes: dict[str, Any], key: Key | None = None) -> str:
    card, key = new_card(key=key)
    body = {**card.to_body(), **changes}
    body = {k: v for k, v in body.items() if v is not KeyError}
    return text(sign_document("card", body, "k_1", key.sign))


OTHER = Key()


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"org_id": "East Marsh"}, "org_id", "not valid"),
    ({"org_id": 7}, "org_id", "text"),
    ({"org_id": "east-marsh\n"}, "org_id", "not valid"),
    ({"name": ""}, "name", "name"),
    ({"name": "two\nlines"}, "name", "one line"),
    ({"name": "x" * 201}, "name", "200"),
    ({"endpoint": "ftp://east.example/"}, "endpoint", "http"),
    ({"endpoint": "https://east.example/?q=1"}, "endpoint", "http"),
    ({"signing_key": "ssh-ed25519 AAAA"}, "signing_key", "ed25519:"),
    ({"signing_key": "ed25519:AAAA"}, "signing_key", "3 bytes"),
    ({"age_recipient": "age1notarecipient"}, "age_recipient", "not a valid age"),
    ({"age_recipient": "ssh-ed25519 AAAA"}, "age_recipient", "age1"),
    ({"audit_verifier_key": verifier_key("civicshare/audit/south-fen", b"\x01" * 32)}, "audit_verifier_key",
     "not the verifier key"),
    ({"audit_verifier_key": verifier_key("civicshare/audit/east-marsh", OTHER.public)}, "audit_verifier_key",
     "not the verifier key"),
    ({"audit_verifier_key": "nonsense"}, "audit_verifier_key", "form"),
    ({"issued": "2026-11-01 09:30:00"}, "issued", "UTC time"),
    ({"issued": "2026-02-30T09:30:00Z"}, "issued", "not a real date"),
    ({"valid_until": "2026-11-01T09:30:00Z"}, "valid_until", "not after"),
    ({"valid_until": "2026-11-01T10:30:00+01:00"}, "valid_until", "UTC time"),
    ({"name": KeyError}, "name", "missing"),
    ({"scope": "everything"}, "scope", "not a field"),
])
def test_malformed_cards_list_each_problem(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid civicshare card") as caught:
        parse_card(_signed_body(changes), now=T0)
    problems = [p for p in caught.value.problems if p.field == field]
    assert problems and words in problems[0].message, caught.value.problems


def test_not_a_card_at_all() -> None:
    card, key = new_card()
    receipt = sign_document("receipt", card.to_body(), "k_1", key.sign)
    with pytest.raises(InvalidInput, match="not a card"):
        parse_card(text(receipt), now=T0)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_card("-----BEGIN CERTIFICATE-----", now=T0)
    with pytest.raises(InvalidInput, match="A signed card is a JSON object"):
        parse_card("[]", now=T0)
    with pytest.raises(TooLarge):
        parse_card(" " * (64 * 1024 + 1), now=T0)
