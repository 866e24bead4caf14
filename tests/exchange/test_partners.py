"""Cards between node homes and pinned partners, through the Node, on SQLite and PostgreSQL.

``node`` (north-wold and south-fen) runs on each backend in turn; ``east`` is a second, separate
home (east-marsh, SQLite) with a clock the test moves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from civicshare.access import Actor, Role
from civicshare.crypto import KdfParams
from civicshare.errors import Conflict, NotFound, PermissionDenied, SecurityError
from civicshare.exchange.card import card_time, parse_card
from civicshare.exchange.signed import sign_document
from civicshare.node import Node
from tests.conftest import PASSPHRASE, actor

NORTH, SOUTH, EAST = "north-wold", "south-fen", "east-marsh"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def admin(org: str) -> Actor:
    return actor(org, Role.ADMIN)


def make_home(path: Path, org: str, *, clock: Clock | None = None, url: str | None = None) -> Node:
    return Node.init(path, org, f"{org.replace('-', ' ').title()} Council", url=url, passphrase=PASSPHRASE,
                     kdf=KdfParams.fast_for_tests(), clock=clock or Clock())


@pytest.fixture
def east(tmp_path: Path) -> Iterator[Node]:
    n = make_home(tmp_path / "east", EAST, url="https://east-marsh.example/")
    yield n
    n.close()


def card_of(node: Node, org: str) -> str:
    return json.dumps(node.card(actor(org, Role.CASEWORKER)), indent=2)


def last_entry(node: Node, org: str, action: str) -> Any:
    return [e for e in node.audit.entries(org) if e.action == action][-1]


def test_a_card_describes_the_organisation_and_its_keys(node: Node, east: Node) -> None:
    document = node.card(actor(NORTH, Role.CASEWORKER))  # a card is public: any user may hand it out
    card, _ = parse_card(json.dumps(document), now=datetime.now(UTC))
    assert (card.org_id, card.name, card.endpoint) == (NORTH, "North Wold District Council", None)
    key_id, public = node.keys.signing_key(NORTH)
    assert card.signing_key == public and document["signature"]["key"] == key_id
    assert card.age_recipient == node.keys.age_recipient(NORTH)[1]
    assert card.audit_verifier_key == node.audit_verifier_key(admin(NORTH))
    assert card.valid_until - card.issued == timedelta(days=365)
    entry = last_entry(node, NORTH, "card.issue")
    assert (entry.object, entry.outcome, entry.details["valid_until"]) == (NORTH, "ok", card_time(card.valid_until))

    east_card, _ = parse_card(card_of(east, EAST), now=east.clock())
    assert east_card.endpoint == "https://east-marsh.example/orgs/east-marsh"
    assert (east_card.issued, east_card.valid_until) == (east.clock(), east.clock() + timedelta(days=365))


def test_cards_verify_and_pin_across_node_homes(node: Node, east: Node) -> None:
    east_text = card_of(east, EAST)
    pinned = node.add_partner(admin(NORTH), east_text)
    assert (pinned.org_id, pinned.partner_id, pinned.name) == (NORTH, EAST, "East Marsh Council")
    assert pinned.signing_key == east.keys.signing_key(EAST)[1]
    assert pinned.age_recipient == east.keys.age_recipient(EAST)[1]
    assert pinned.endpoint == "https://east-marsh.example/orgs/east-marsh"
    assert pinned.source == "pinned" and pinned.revoked_at is None and pinned.added_by == admin(NORTH).name
    assert pinned.valid_until.tzinfo is not None
    assert node.partner(admin(NORTH), EAST) == pinned
    assert node.partners(admin(NORTH)) == [pinned]
    # What was pinned is kept as signed, so anyone can check it again.
    assert parse_card(pinned.card, now=datetime.now(UTC))[1] == json.loads(east_text)
    assert pinned.to_json(with_card=True)["card"] == json.loads(east_text)

    back = east.add_partner(admin(EAST), card_of(node, NORTH))
    assert (back.org_id, back.partner_id, back.endpoint) == (EAST, NORTH, None)
    entry = last_entry(east, EAST, "partner.add")
    assert (entry.object, entry.outcome, entry.details["change"]) == (NORTH, "ok", "new")
    assert entry.details["signing_key"] == back.to_json()["signing_key"]


def test_an_expired_card_is_refused_and_the_refusal_logged(node: Node, east: Node) -> None:
    text = card_of(node, NORTH)
    east.clock.now += timedelta(days=366)  # type: ignore[attr-defined]
    with pytest.raises(SecurityError, match=r"North Wold District Council \(north-wold\) expired on .*"
                                            r"ask them for a new one"):
        east.add_partner(admin(EAST), text)
    assert east.partners(admin(EAST)) == []
    entry = last_entry(east, EAST, "partner.add")
    assert entry.outcome == "refused" and entry.details["code"] == "security" and "expired" in entry.details["reason"]


def test_a_tampered_card_is_refused(node: Node, east: Node) -> None:
    document = json.loads(card_of(node, NORTH))
    document["body"]["name"] = "North Wold District Council Payments"
    with pytest.raises(SecurityError, match="does not verify"):
        east.add_partner(admin(EAST), json.dumps(document))
    entry = last_entry(east, EAST, "partner.add")
    assert entry.outcome == "refused" and entry.object is None and "does not verify" in entry.details["reason"]


def test_a_card_signed_by_another_key_than_it_carries_is_refused(node: Node, east: Node) -> None:
    body = json.loads(card_of(node, NORTH))["body"]
    key_id, _ = node.keys.signing_key(SOUTH)
    store = node.keystore(SOUTH)
    forged = sign_document("card", body, key_id, lambda data: store.sign(key_id, data))
    with pytest.raises(SecurityError, match="does not verify"):
        east.add_partner(admin(EAST), json.dumps(forged))


def test_an_organisation_does_not_pin_itself(node: Node) -> None:
    with pytest.raises(Conflict, match="does not pin itself"):
        node.add_partner(admin(NORTH), card_of(node, NORTH))
    entry = last_entry(node, NORTH, "partner.add")
    assert (entry.object, entry.outcome, entry.details["code"]) == (NORTH, "refused", "conflict")
    # Organisations on one node are partners like any others: only through a pinned card.
    assert node.add_partner(admin(SOUTH), card_of(node, NORTH)).partner_id == NORTH


def test_a_key_change_needs_replace(node: Node, east: Node, tmp_path: Path) -> None:
    first = node.add_partner(admin(NORTH), card_of(east, EAST))
    assert node.add_partner(admin(NORTH), card_of(east, EAST)).signing_key == first.signing_key
    assert last_entry(node, NORTH, "partner.add").details["change"] == "refreshed"

    rekeyed = make_home(tmp_path / "east-again", EAST)  # same id, new keys: a rebuild, or an impostor
    try:
        new_text = card_of(rekeyed, EAST)
        new_key = rekeyed.keys.signing_key(EAST)[1]
    finally:
        rekeyed.close()
    with pytest.raises(Conflict, match=r"already pinned with signing key .* --replace"):
        node.add_partner(admin(NORTH), new_text)
    assert node.partner(admin(NORTH), EAST).signing_key == first.signing_key
    refused = last_entry(node, NORTH, "partner.add")
    assert (refused.object, refused.outcome, refused.details["code"]) == (EAST, "refused", "conflict")

    replaced = node.add_partner(admin(NORTH), new_text, replace=True)
    assert replaced.signing_key == new_key != first.signing_key
    assert node.partner(admin(NORTH), EAST) == replaced
    entry = last_entry(node, NORTH, "partner.add")
    assert entry.details["change"] == "key-replaced"
    assert entry.details["previous_signing_key"] == first.to_json()["signing_key"]
    with pytest.raises(Conflict):
        node.add_partner(admin(NORTH), card_of(east, EAST))  # and the old key is now the stranger


def test_an_older_card_does_not_replace_a_newer_one(node: Node, east: Node) -> None:
    newer = card_of(east, EAST)
    east.clock.now -= timedelta(days=1)  # type: ignore[attr-defined]
    older = card_of(east, EAST)
    node.add_partner(admin(NORTH), newer)
    with pytest.raises(Conflict, match="before the one pinned"):
        node.add_partner(admin(NORTH), older)
    assert json.loads(node.partner(admin(NORTH), EAST).card) == json.loads(newer)


def test_partners_belong_to_one_organisation(node: Node, east: Node) -> None:
    text = card_of(east, EAST)
    node.add_partner(admin(NORTH), text)
    assert node.partners(admin(SOUTH)) == []
    with pytest.raises(NotFound, match="not a partner of south-fen"):
        node.partner(admin(SOUTH), EAST)
    south = node.add_partner(actor(SOUTH, Role.ADMIN, name="sam"), text)
    north = node.partner(admin(NORTH), EAST)
    assert (south.org_id, north.org_id) == (SOUTH, NORTH)
    assert south.added_by != north.added_by
    assert [p.org_id for p in node.partners(admin(NORTH))] == [NORTH]


def test_who_may_read_and_pin_partners(node: Node, east: Node) -> None:
    text = card_of(east, EAST)
    for role in (Role.RECORDS_MANAGER, Role.DPO, Role.CASEWORKER):
        with pytest.raises(PermissionDenied, match="may not pin partners"):
            node.add_partner(actor(NORTH, role), text)
    entry = last_entry(node, NORTH, "partner.add")
    assert entry.outcome == "refused" and entry.details["code"] == "forbidden"
    node.add_partner(admin(NORTH), text)
    for role in (Role.RECORDS_MANAGER, Role.DPO, Role.ADMIN):
        assert [p.partner_id for p in node.partners(actor(NORTH, role))] == [EAST]
        assert node.partner(actor(NORTH, role), EAST).partner_id == EAST
    with pytest.raises(PermissionDenied, match="may not see partners"):
        node.partners(actor(NORTH, Role.CASEWORKER))
    with pytest.raises(PermissionDenied):
        node.partner(actor(NORTH, Role.CASEWORKER), EAST)
