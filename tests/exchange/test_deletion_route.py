"""POST /orgs/{org}/transfers/{tid}/deletion: only the recipient's own, exact certificate is kept.

Every refusal is audited at the provider and leaves its ledger as it was; a repeat of an accepted
certificate changes nothing. Runs on SQLite and PostgreSQL, through the node's own API.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from civicshare.canonical import canonical_json
from civicshare.exchange.deletion import make_certificate, peek_certificate
from civicshare.node import Node
from tests.agreements.lifecycle_support import activate, clock, cnode, ctransport
from tests.agreements.retention_support import (
    inbound,
    ledger,
    send_notices,
    share_delivered,
)
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, URL, dataset, entries, pin

__all__ = ["clock", "cnode", "ctransport"]
EAST = "east-marsh"


def post(node: Node, transport: httpx.BaseTransport, sender: str, transfer_id: str, body: bytes,
         to: str = NORTH) -> httpx.Response:
    with node.partner_client(transport=transport) as client:
        return client.request(sender, to, "POST", f"/transfers/{transfer_id}/deletion", content=body,
                              content_type="application/json")


def deleted(node: Node, transport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A delivered transfer whose holding south-fen deleted; its certificate, not yet sent."""
    record, sent = share_delivered(node, transport, tmp_path)
    node.revoke_agreement(actor(NORTH), record.id, "ended early")
    send_notices(node, transport)
    assert node.retention.sweep().deleted == [sent.id]
    certificate = inbound(node, sent.id).certificate
    assert certificate is not None
    return sent.id, certificate


def refusals(node: Node) -> list[tuple[str | None, str, str]]:
    return [(e.object, e.details["sender"], e.details["code"]) for e in entries(node, NORTH, "exchange.refused")
            if e.details.get("step") == "deletion-certificate"]


def unverified(node: Node, transfer_id: str) -> bool:
    entry = ledger(node, transfer_id)
    return entry.deletion_verified_at is None and entry.deletion_certificate is None


def test_the_recipients_certificate_is_kept_once(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                 tmp_path: Path) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    answer = post(cnode, ctransport, SOUTH, tid, canonical_json(certificate))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"version": 1, "transfer": tid, "deletion": "verified",
                             "verified_at": answer.json()["verified_at"],
                             "words": "deleted at recipient, certificate verified"}
    again = post(cnode, ctransport, SOUTH, tid, json.dumps(certificate, indent=2).encode())
    assert again.status_code == 200 and again.json() == answer.json()
    assert len(entries(cnode, NORTH, "transfer.deletion")) == 1
    assert ledger(cnode, tid).deletion_certificate == certificate
    # The queued notice arrives later, as a repeat: accepted, nothing changes.
    assert send_notices(cnode, ctransport) == 1
    assert len(entries(cnode, NORTH, "transfer.deletion")) == 1 and refusals(cnode) == []


@pytest.mark.parametrize("change, code", [
    ({"reason": "retention ended: nothing to see"}, "security"),  # changed after signing
    ({"deleted": "2030-01-01T00:00:00Z"}, "security"),
    ({"version": 2}, "invalid_input"),
])
def test_a_tampered_certificate_is_refused_and_audited(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                       tmp_path: Path, change: dict[str, Any], code: str) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    forged = copy.deepcopy(certificate)
    forged["body"].update(change)
    answer = post(cnode, ctransport, SOUTH, tid, canonical_json(forged))
    assert answer.status_code in (403, 422) and answer.json()["error"]["code"] == code
    assert unverified(cnode, tid)
    assert refusals(cnode) == [(tid, SOUTH, code)]


def test_a_certificate_signed_by_another_key_is_refused(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                        tmp_path: Path) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    # The same words, signed by north-wold's own key instead of south-fen's.
    key_id, _public = cnode.keys.signing_key(NORTH)
    store = cnode.keystore(NORTH)
    forged = make_certificate(peek_certificate(certificate), key_id, lambda data: store.sign(key_id, data))
    answer = post(cnode, ctransport, SOUTH, tid, canonical_json(forged))
    assert answer.status_code == 403 and "does not verify" in answer.json()["error"]["message"]
    assert unverified(cnode, tid) and refusals(cnode) == [(tid, SOUTH, "security")]


def test_a_certificate_for_another_transfer_is_refused(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                       tmp_path: Path) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    # A second transfer, still held at south-fen: the first one's certificate says nothing about it.
    other = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=["surname"])
    holding = dataset(cnode, tmp_path)
    second = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=other.id)
    assert cnode.exchange.worker(transport=ctransport).run_once() == {second.id: "delivered"}
    answer = post(cnode, ctransport, SOUTH, second.id, canonical_json(certificate))
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "security"
    fields = {p["field"] for p in answer.json()["error"]["problems"]}
    assert {"transfer", "agreement"} <= fields
    assert unverified(cnode, second.id) and refusals(cnode) == [(second.id, SOUTH, "security")]


def test_strangers_and_unknown_transfers_learn_nothing(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                       tmp_path: Path) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    # East-marsh is a partner of north-wold, but the transfer did not go to it.
    cnode.add_organisation(EAST, "East Marsh Council", url=URL)
    pin(cnode, NORTH, EAST)
    pin(cnode, EAST, NORTH)
    key_id, _public = cnode.keys.signing_key(EAST)
    store = cnode.keystore(EAST)
    theirs = make_certificate(replace(peek_certificate(certificate), recipient=EAST), key_id,
                              lambda data: store.sign(key_id, data))
    answer = post(cnode, ctransport, EAST, tid, canonical_json(theirs))
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    unknown = post(cnode, ctransport, SOUTH, "t_nosuchtransfer0", canonical_json(certificate))
    assert unknown.status_code == 404
    bad_id = post(cnode, ctransport, SOUTH, "T_NOT-AN-ID", canonical_json(certificate))
    assert bad_id.status_code == 404
    garbage = post(cnode, ctransport, SOUTH, tid, b"not json at all")
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_input"
    assert unverified(cnode, tid)
    assert [(obj, who, code) for obj, who, code in refusals(cnode)] == [
        (tid, EAST, "not_found"), ("t_nosuchtransfer0", SOUTH, "not_found"), ("T_NOT-AN-ID", SOUTH, "not_found"),
        (tid, SOUTH, "invalid_input")]


def test_an_unsigned_request_is_turned_away_at_the_gate(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock,
                                                        tmp_path: Path) -> None:
    tid, certificate = deleted(cnode, ctransport, clock, tmp_path)
    with httpx.Client(transport=ctransport, base_url=URL) as client:
        answer = client.post(f"/orgs/{NORTH}/transfers/{tid}/deletion", content=canonical_json(certificate))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "bad_signature"
    assert unverified(cnode, tid)
    assert [e.details["code"] for e in entries(cnode, NORTH, "exchange.refused")] == ["bad_signature"]
