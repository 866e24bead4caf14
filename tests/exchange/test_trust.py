"""Trust (pinned partners, then directories; revocation wins), the gate, nonces and the partner client.

Both backends: ``node`` hosts north-wold and south-fen; ``east`` is a separate home (east-marsh).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update

from civicshare.db import tables as t
from civicshare.errors import (
    NotFound,
    PartnerRevoked,
    Replayed,
    SignatureRefused,
    UnknownSender,
    Unreachable,
    UsageError,
)
from civicshare.exchange.httpsig import NONCE_TTL, sign_request
from civicshare.exchange.nonces import NonceBook
from civicshare.node import Node
from tests.exchange.test_directory import EAST, NAME, NORTH, SOUTH, admin, card_of, entries, make_home, operate


@pytest.fixture
def east(tmp_path: Path) -> Iterator[Node]:
    n = make_home(tmp_path / "east", EAST, url="https://east-marsh.example")
    yield n
    n.close()


def signer(node: Node, org: str) -> Any:
    key_id, _ = node.keys.signing_key(org)
    store = node.keystore(org)
    return lambda data: store.sign(key_id, data)


def signed(node: Node, sender: str, *, url: str = "https://south.example/orgs/south-fen/ping", body: bytes = b"",
           sign: Any = None, now: Any = None, nonce: str = "n" * 26, method: str = "GET") -> httpx.Request:
    request = httpx.Request(method, url, content=body)
    sign_request(request, sender=sender, sign=sign or signer(node, sender), now=now or node.clock(), nonce=nonce)
    return request


def check(node: Node, recipient: str, request: httpx.Request) -> Any:
    return node.gate.check(recipient, method=request.method, url=str(request.url),
                           headers=request.headers.multi_items(), body=request.content)


def refusal(node: Node, org: str) -> Any:
    entry = entries(node, org, "exchange.refused")[-1]
    assert entry.outcome == "refused" and entry.actor == "node:exchange-gate"
    return entry


# Trust --------------------------------------------------------------------------------------------


def test_pinned_then_directory_then_unknown(node: Node, east: Node) -> None:
    with pytest.raises(UnknownSender, match="No organisation called east-marsh is pinned or listed in a directory "
                                            "south-fen trusts"):
        node.trust.partner(SOUTH, EAST)
    node.add_partner(admin(SOUTH), card_of(node, NORTH))
    pinned = node.trust.partner(SOUTH, NORTH)
    assert (pinned.partner_id, pinned.source, pinned.signing_key) == (NORTH, "pinned", node.keys.signing_key(NORTH)[1])

    operate(east, (east, EAST), (node, NORTH))  # east-marsh operates, listing itself and north-wold
    node.use_directory(admin(SOUTH), str(east.directory.published_path))
    member = node.trust.partner(SOUTH, EAST)
    assert (member.source, member.endpoint) == (f"directory:{NAME}", "https://east-marsh.example/orgs/east-marsh")
    assert member.signing_key == east.keys.signing_key(EAST)[1]
    assert member.age_recipient == east.keys.age_recipient(EAST)[1]
    assert node.trust.partner(SOUTH, NORTH).source == "pinned"  # pinned comes first
    assert [(p.partner_id, p.source) for p in node.trust.partners(SOUTH)] == [
        (EAST, f"directory:{NAME}"), (NORTH, "pinned")]
    assert node.trust.partners(NORTH) == []  # trust is per organisation


def test_revocation_in_a_directory_wins_over_pinning(node: Node, east: Node) -> None:
    node.add_partner(admin(SOUTH), card_of(node, NORTH))
    operate(east, (east, EAST))
    east.directory_revoke(admin(EAST), NORTH, "merged into South Fen")
    east.directory_publish(admin(EAST))
    node.use_directory(admin(SOUTH), str(east.directory.published_path))
    with pytest.raises(PartnerRevoked, match=rf"north-wold was revoked by the directory {NAME} on "
                                             r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: merged into South Fen"):
        node.trust.partner(SOUTH, NORTH)
    assert [p.partner_id for p in node.trust.partners(SOUTH)] == [EAST]


def test_revoked_or_expired_pinned_partners(node: Node, east: Node) -> None:
    node.add_partner(admin(SOUTH), card_of(node, NORTH))
    with node.db.engine.begin() as conn:
        conn.execute(update(t.partners).values(revoked_at=node.clock()))
    with pytest.raises(PartnerRevoked, match="north-wold .* was revoked by south-fen"):
        node.trust.partner(SOUTH, NORTH)
    with node.db.engine.begin() as conn:
        conn.execute(update(t.partners).values(revoked_at=None, valid_until=node.clock() - timedelta(seconds=1)))
    with pytest.raises(UnknownSender, match="expired on .* ask them for a new card"):
        node.trust.partner(SOUTH, NORTH)
    assert node.trust.partners(SOUTH) == []


def test_expired_member_cards_are_not_used(node: Node, east: Node) -> None:
    operate(east, (east, EAST))
    node.use_directory(admin(SOUTH), str(east.directory.published_path))
    assert node.trust.partner(SOUTH, EAST).partner_id == EAST
    node.clock = east.clock
    node.trust.clock = east.clock
    east.clock.now += timedelta(days=366)  # type: ignore[attr-defined]
    with pytest.raises(UnknownSender):
        node.trust.partner(SOUTH, EAST)


# The gate -----------------------------------------------------------------------------------------


@pytest.fixture
def pinned(node: Node) -> Node:
    """south-fen has pinned north-wold."""
    node.add_partner(admin(SOUTH), card_of(node, NORTH))
    return node


def test_a_signed_request_from_a_partner_passes_once(pinned: Node) -> None:
    request = signed(pinned, NORTH)
    accepted = check(pinned, SOUTH, request)
    assert (accepted.sender, accepted.nonce) == (NORTH, "n" * 26)
    with pytest.raises(Replayed, match="already received at .*accepted once only"):
        check(pinned, SOUTH, request)
    entry = refusal(pinned, SOUTH)
    assert entry.object == NORTH
    assert entry.details == {"sender": NORTH, "code": "replayed", "reason": entry.details["reason"],
                             "method": "GET", "path": "/orgs/south-fen/ping"}
    # Nonces are per recipient: the same request is new to north-wold (which does not trust itself).
    with pytest.raises(UnknownSender):
        check(pinned, NORTH, request)
    assert refusal(pinned, NORTH).details["code"] == "unknown_sender"


@pytest.mark.parametrize("case, code", [("unknown", "unknown_sender"), ("forged", "bad_signature"),
                                        ("stale", "bad_signature"), ("digest", "digest_mismatch"),
                                        ("unsigned", "bad_signature")])
def test_refusals_are_audited_in_the_recipients_log(pinned: Node, east: Node, case: str, code: str) -> None:
    if case == "unknown":
        request = signed(east, EAST)
    elif case == "forged":
        request = signed(pinned, NORTH, sign=Ed25519PrivateKey.generate().sign)
    elif case == "stale":
        request = signed(pinned, NORTH, now=pinned.clock() - timedelta(minutes=6))
    elif case == "digest":
        request = signed(pinned, NORTH, body=b"the body", method="PUT")
        request = httpx.Request("PUT", request.url, headers=request.headers, content=b"the bodY")
    else:
        request = httpx.Request("GET", "https://south.example/orgs/south-fen/ping")
    before = len(entries(pinned, SOUTH, "exchange.refused"))
    with pytest.raises((SignatureRefused, UnknownSender)) as caught:
        check(pinned, SOUTH, request)
    assert caught.value.code == code
    after = entries(pinned, SOUTH, "exchange.refused")
    assert len(after) == before + 1
    entry = after[-1]
    expected_sender = None if case == "unsigned" else (EAST if case == "unknown" else NORTH)
    assert (entry.object, entry.details["sender"], entry.details["code"]) == (expected_sender, expected_sender, code)
    assert entry.details["reason"] == caught.value.message
    with pinned.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.seen_nonces)).scalar() == 0


def test_a_recipient_not_hosted_here_is_not_found(pinned: Node) -> None:
    with pytest.raises(NotFound, match="west-fen"):
        check(pinned, "west-fen", signed(pinned, NORTH))


# Nonces -------------------------------------------------------------------------------------------


def test_nonces_expire_and_are_purged(node: Node) -> None:
    book = NonceBook(node.db.engine)
    now = node.clock()
    book.remember(SOUTH, NORTH, "a" * 26, now + NONCE_TTL, now)
    with pytest.raises(Replayed):
        book.remember(SOUTH, NORTH, "a" * 26, now + NONCE_TTL, now + timedelta(minutes=9))
    later = now + NONCE_TTL + timedelta(seconds=1)
    # Once expired, the old record no longer blocks the nonce (it could not pass the time check anyway).
    book.remember(SOUTH, NORTH, "a" * 26, later + NONCE_TTL, later)
    book.remember(SOUTH, NORTH, "b" * 26, now + NONCE_TTL, now)
    assert book.purge(later + NONCE_TTL) == 1  # only b's record had expired by then
    assert book.purge(later + NONCE_TTL + timedelta(seconds=1)) == 1


def test_racing_copies_of_one_request_pass_exactly_once(node: Node) -> None:
    books = [NonceBook(node.db.engine) for _ in range(6)]
    now = node.clock()
    results: list[str] = []
    start = threading.Barrier(len(books))

    def attempt(book: NonceBook) -> None:
        start.wait()
        try:
            book.remember(SOUTH, NORTH, "r" * 26, now + NONCE_TTL, now)
            results.append("ok")
        except Replayed:
            results.append("replayed")

    threads = [threading.Thread(target=attempt, args=(b,)) for b in books]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["replayed"] * (len(books) - 1)


# The partner client -------------------------------------------------------------------------------


def test_the_client_signs_what_the_gate_accepts(pinned: Node, east: Node) -> None:
    """east-marsh sends to south-fen through a transport that hands the request to south-fen's gate."""
    pinned.add_partner(admin(SOUTH), card_of(east, EAST))
    east.add_partner(admin(EAST), json.dumps(dict(pinned.card(admin(SOUTH)))))
    seen: list[Any] = []

    def deliver(request: httpx.Request) -> httpx.Response:
        try:
            accepted = check(pinned, SOUTH, request)
        except (SignatureRefused, UnknownSender, Replayed) as exc:
            return httpx.Response(exc.http_status, json=exc.to_json())
        seen.append((request.url.path, request.headers.get("content-type"), request.content))
        return httpx.Response(200, json={"sender": accepted.sender})

    with east.partner_client(transport=httpx.MockTransport(deliver)) as client:
        # south-fen's card has no endpoint (its node has no URL): the client says so.
        with pytest.raises(UsageError, match="has no endpoint"):
            client.request(EAST, SOUTH, "GET", "/ping")
    with east.db.engine.begin() as conn:
        conn.execute(update(t.partners).where(t.partners.c.partner_id == SOUTH).values(
            endpoint="https://south.example/orgs/south-fen"))
    with east.partner_client(transport=httpx.MockTransport(deliver)) as client:
        answer = client.request(EAST, SOUTH, "PUT", "/transfers/t_1", content=b"{}", content_type="application/json")
        assert answer.status_code == 200 and answer.json() == {"sender": EAST}
        again = client.request(EAST, SOUTH, "PUT", "/transfers/t_1", content=b"{}")
        assert again.status_code == 200  # a fresh nonce each time
        with pytest.raises(UnknownSender):
            client.request(EAST, NORTH, "GET", "/ping")
    assert seen[0] == ("/orgs/south-fen/transfers/t_1", "application/json", b"{}")


def test_an_unreachable_partner_is_reported_plainly(east: Node, node: Node) -> None:
    east.add_partner(admin(EAST), card_of(node, SOUTH))
    with east.db.engine.begin() as conn:
        conn.execute(update(t.partners).values(endpoint="http://127.0.0.1:9/orgs/south-fen"))
    with east.partner_client(timeout=5) as client, pytest.raises(Unreachable, match=r"South Fen Borough Council "
                                                                                     r"\(south-fen\) at http://127"):
        client.request(EAST, SOUTH, "GET", "/ping")
