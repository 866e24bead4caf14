"""What a party refuses: signatures over another hash, forged signatures, tampered proposals, unknown
parties; and how notices wait, retry and fail. SQLite and PostgreSQL, on a clock the test moves.

Documents go over the node's own API (signed requests through the app), so each refusal is seen as a
partner would see it: the error code and words, an ``exchange.refused`` entry, nothing stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from civicshare.access import Role
from civicshare.agreements import documents as docs
from civicshare.agreements.lifecycle import NotYetHere
from civicshare.agreements.register import AgreementRecord
from civicshare.agreements.validate import check_agreement
from civicshare.canonical import canonical_json
from civicshare.db import tables as t
from civicshare.errors import NotForUs, NotFound, SecurityError, UnknownSender
from civicshare.exchange.signed import sign_document
from civicshare.node import Node
from tests.agreements.lifecycle_support import clock, cnode, ctransport, draft, send_notices
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import EAST, NORTH, SOUTH, entries

__all__ = ["clock", "cnode", "ctransport"]


def signer(node: Node, org: str) -> tuple[str, Callable[[bytes], bytes]]:
    key_id, _public = node.keys.signing_key(org)
    store = node.keystore(org)
    return key_id, lambda data: store.sign(key_id, data)


def post(node: Node, transport: httpx.BaseTransport, sender: str, to: str, path: str,
         document: dict[str, Any]) -> httpx.Response:
    with node.partner_client(transport=transport) as client:
        return client.request(sender, to, "POST", path, content=canonical_json(document),
                              content_type="application/json")


def proposed(node: Node, transport: httpx.BaseTransport) -> AgreementRecord:
    """north-wold's agreement with south-fen, proposed and held by both."""
    record = node.create_agreement(actor(NORTH), draft(node, NORTH, [SOUTH], dataset="tenants", fields=["uprn"]),
                                   fmt="json")
    node.propose_agreement(actor(NORTH), record.id)
    assert send_notices(node, transport) == 1
    return node.agreement_register.find(NORTH, record.id)


def changed(record: AgreementRecord, **fields: Any) -> Any:
    """The same agreement (same id and version) with some fields changed: another hash."""
    body = record.agreement.to_body()
    body.update(fields)
    other = check_agreement(body)
    assert other.agreement_hash != record.hash
    return other


def refused(node: Node, org: str) -> dict[str, Any]:
    return dict(entries(node, org, "exchange.refused")[-1].details)


def test_signature_over_a_different_hash_is_refused(cnode: Node, ctransport: httpx.BaseTransport,
                                                    clock: Clock) -> None:
    record = proposed(cnode, ctransport)
    # south-fen signs, with its real key, an agreement that differs in one field: onward sharing allowed.
    other = changed(record, onward_sharing=True)
    document = docs.make_signature(other, SOUTH, "sam-dpo", clock(), *signer(cnode, SOUTH))
    answer = post(cnode, ctransport, SOUTH, NORTH, f"/agreements/{record.id}/signatures", document)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "security"
    assert error["message"] == (
        f"This agreement-signature of {record.id} version 1 covers the hash {other.agreement_hash[:12]}..., but the "
        f"version north-wold holds has the hash {record.hash[:12]}...: it is about a different agreement.")
    assert cnode.agreement_register.find(NORTH, record.id).signatures == ()
    assert refused(cnode, NORTH) | {"reason": ""} == {"sender": SOUTH, "kind": "agreement-signature",
                                                      "code": "security", "reason": ""}

    # Through the outbox, the same refusal fails the notice for good, with the partner's words.
    with cnode.db.engine.begin() as conn:
        cnode.notices.queue(conn, SOUTH, NORTH, docs.SIGNATURE, f"{record.id} version 1",
                            f"/agreements/{record.id}/signatures", document)
    send_notices(cnode, ctransport)
    [notice] = [n for n in cnode.notices.list(SOUTH) if n.kind == docs.SIGNATURE]
    assert notice.state == "failed" and "it is about a different agreement" in (notice.last_error or "")


def test_forged_signature_is_refused(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    record = proposed(cnode, ctransport)
    forger = Ed25519PrivateKey.generate()
    forged = docs.make_signature(record.agreement, SOUTH, "sam-dpo", clock(), "forged", forger.sign)
    answer = post(cnode, ctransport, SOUTH, NORTH, f"/agreements/{record.id}/signatures", forged)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == ("The signature on this agreement-signature does not verify: it was "
                                                 "changed after signing, or signed with another key.")
    # A party's real signature, sent by someone else, is not taken either.
    genuine = docs.make_signature(record.agreement, SOUTH, "sam-dpo", clock(), *signer(cnode, SOUTH))
    with pytest.raises(SecurityError, match="made out for south-fen but was sent by north-wold"):
        cnode.agreement_lifecycle.receive_signature(NORTH, NORTH, record.id, genuine)
    # Nor a signature that says another role signed it.
    body = dict(genuine["body"], role="admin")
    as_admin = sign_document(docs.SIGNATURE, body, *signer(cnode, SOUTH))
    answer = post(cnode, ctransport, SOUTH, NORTH, f"/agreements/{record.id}/signatures", as_admin)
    assert answer.status_code == 422 and answer.json()["error"]["problems"][0]["field"] == "body.role"
    assert cnode.agreement_register.find(NORTH, record.id).signatures == ()
    assert [e.details["code"] for e in entries(cnode, NORTH, "exchange.refused")] == [
        "security", "security", "invalid_input"]
    # The genuine one, from south-fen, is.
    answer = post(cnode, ctransport, SOUTH, NORTH, f"/agreements/{record.id}/signatures", genuine)
    assert answer.status_code == 200 and answer.json() == {
        "version": 1, "agreement": record.id, "agreement_version": 1, "hash": record.hash, "state": "proposed"}


def test_tampered_proposal_is_refused(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], documents=True), fmt="json")
    key_id, sign = signer(cnode, NORTH)
    document = docs.make_proposal(record.agreement, NORTH, clock(), key_id, sign)
    # A field changed after signing: the document's signature no longer verifies.
    tampered = json.loads(json.dumps(document))
    tampered["body"]["agreement"]["onward_sharing"] = True
    answer = post(cnode, ctransport, NORTH, SOUTH, "/agreements", tampered)
    assert answer.status_code == 403 and "does not verify" in answer.json()["error"]["message"]
    # Changed and signed again by the proposer, keeping the hash: the hash no longer matches.
    resigned = sign_document(docs.PROPOSAL, tampered["body"], key_id, sign)
    answer = post(cnode, ctransport, NORTH, SOUTH, "/agreements", resigned)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == (
        f"The agreement in this proposal of {record.id} does not match the hash it names ({record.hash[:12]}...): "
        "it was changed after it was proposed.")
    with pytest.raises(NotFound):
        cnode.agreement_register.find(SOUTH, record.id)
    assert [e.details["code"] for e in entries(cnode, SOUTH, "exchange.refused")] == ["security", "security"]
    # A copy changed in the register after it was stored no longer reads: the hash gives it away.
    answer = post(cnode, ctransport, NORTH, SOUTH, "/agreements", document)
    assert answer.status_code == 200 and answer.json()["state"] == "proposed"
    body = json.loads(record.agreement.canonical())
    body["onward_sharing"] = True
    with cnode.db.engine.begin() as conn:
        conn.execute(update(t.agreements).where(t.agreements.c.org_id == SOUTH).values(body=json.dumps(body)))
    with pytest.raises(SecurityError, match="does not match its hash"):
        cnode.agreement_register.find(SOUTH, record.id)


def test_unknown_parties_are_refused(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    # east-marsh is neither pinned by north-wold nor on this node: nothing can be sent to it.
    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH, EAST], documents=True), fmt="json")
    with pytest.raises(UnknownSender, match=f"east-marsh is a party to {record.id} but north-wold cannot send it "
                                            "anything: No organisation called east-marsh is pinned"):
        cnode.propose_agreement(actor(NORTH), record.id)
    assert cnode.agreement_register.find(NORTH, record.id).state == "draft"
    assert cnode.notices.list(NORTH) == []
    assert entries(cnode, NORTH, "agreement.propose")[-1].outcome == "refused"

    # Hosted here, east-marsh can take part; but a proposal that does not name it is not for it,
    # and it cannot sign an agreement it is not party to.
    cnode.add_organisation(EAST, "East Marsh Council")
    two = proposed(cnode, ctransport)
    proposal = docs.make_proposal(two.agreement, NORTH, clock(), *signer(cnode, NORTH))
    with pytest.raises(NotForUs, match=f"Agreement {two.id} does not name east-marsh as a party"):
        cnode.agreement_lifecycle.receive_proposal(EAST, NORTH, proposal)
    outsider = docs.make_signature(two.agreement, EAST, "eve", clock(), *signer(cnode, EAST))
    with pytest.raises(SecurityError, match=f"east-marsh is not a party to agreement {two.id}"):
        cnode.agreement_lifecycle.receive_signature(NORTH, EAST, two.id, outsider)
    assert refused(cnode, NORTH)["sender"] == EAST and refused(cnode, EAST)["code"] == "not_for_us"
    assert cnode.agreement_register.find(NORTH, two.id).signatures == ()

    # With a hosted party the outbox hands notices over on the node itself (no partner client needed).
    cnode.propose_agreement(actor(NORTH), record.id)
    assert cnode.notices.send_due(None) == 1
    assert [n.state for n in cnode.notices.list(NORTH) if n.recipient == EAST] == ["sent"]
    assert cnode.agreement_register.find(EAST, record.id).state == "proposed"


def test_signature_before_its_proposal_waits_and_retries(cnode: Node, ctransport: httpx.BaseTransport,
                                                         clock: Clock) -> None:
    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], documents=True), fmt="json")
    cnode.propose_agreement(actor(NORTH), record.id)
    cnode.sign_agreement(actor(NORTH, Role.DPO), record.id)
    # The proposal is held back (say, its first try timed out): the signature arrives first.
    with cnode.db.engine.begin() as conn:
        conn.execute(update(t.notices).where(t.notices.c.kind == docs.PROPOSAL).values(
            next_attempt_at=clock() + timedelta(minutes=10)))
    assert send_notices(cnode, ctransport) == 0
    [proposal, signature] = sorted(cnode.notices.list(NORTH), key=lambda n: n.kind != docs.PROPOSAL)
    assert (signature.state, signature.attempts) == ("pending", 1)
    assert signature.last_error == (
        f"south-fen refused the agreement-signature of {record.id} version 1 (HTTP 409, not_yet): Version 1 of "
        f"agreement {record.id} has not reached south-fen yet; the agreement-signature will be taken when its "
        "proposal has arrived.")
    assert signature.next_attempt_at is not None
    assert clock() + timedelta(seconds=1) <= signature.next_attempt_at <= clock() + timedelta(seconds=2)
    with pytest.raises(NotYetHere):
        cnode.agreement_lifecycle.receive_signature(SOUTH, NORTH, record.id, json.loads(
            cnode.db.engine.connect().execute(t.notices.select().where(t.notices.c.id == signature.id)).one().document))
    clock.advance(minutes=10)
    assert send_notices(cnode, ctransport) == 2
    theirs = cnode.agreement_register.find(SOUTH, record.id)
    assert theirs.waiting_for == (SOUTH,) and theirs.signed_parties == (NORTH,)


def test_the_same_proposal_twice_is_taken_once(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    record = proposed(cnode, ctransport)
    again = cnode.propose_agreement(actor(NORTH), record.id)
    assert again.state == "proposed"
    assert send_notices(cnode, ctransport) == 1
    assert [r.hash for r in cnode.agreements(actor(SOUTH))] == [record.hash]
    assert [e.details["new"] for e in entries(cnode, SOUTH, "agreement.received")] == [True, False]


def test_unreachable_partner_backs_off_then_delivers(cnode: Node, ctransport: httpx.BaseTransport,
                                                     clock: Clock) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], documents=True), fmt="json")
    cnode.propose_agreement(actor(NORTH), record.id)
    waits = []
    for attempt in range(1, 5):
        assert send_notices(cnode, httpx.MockTransport(down)) == 0
        [notice] = cnode.notices.list(NORTH)
        assert notice.state == "pending" and notice.attempts == attempt
        assert "could not be reached" in (notice.last_error or "")
        assert notice.next_attempt_at is not None
        waits.append((notice.next_attempt_at - clock()).total_seconds())
        assert not cnode.notices.has_due()
        clock.now = notice.next_attempt_at
    assert [2 ** (n - 1) <= w <= 2 ** n for n, w in enumerate(waits, 1)] == [True] * 4
    assert send_notices(cnode, ctransport) == 1
    assert cnode.notices.list(NORTH)[0].state == "sent"
    assert entries(cnode, NORTH, "notice.sent")[-1].details["attempt"] == 5
