"""Checkpoint exchange and ``audit verify --witnesses`` through the real node-to-node routes."""

from __future__ import annotations

import httpx
import pytest

from civicshare.access import Actor
from civicshare.db import tables as t
from civicshare.errors import AuditTampered
from civicshare.exchange import witnessing
from civicshare.node import Node
from tests.audit.test_witness import _rewrite_history
from tests.exchange.transfer_support import NORTH, SOUTH, entries


def _verify(node: Node, org: str, transport: httpx.BaseTransport) -> dict:
    return node.audit_verify(Actor.operator(org), witnesses=True, client_options={"transport": transport}).to_json()


def test_partners_swap_checkpoints_and_each_keeps_the_others(xnode: Node, transport: httpx.BaseTransport) -> None:
    results = witnessing.exchange(xnode, NORTH, transport=transport)
    assert [(r.partner, r.error, len(r.notes)) for r in results] == [(SOUTH, None, 1)]
    # Each side now holds a checkpoint of the other's log.
    assert [w.subject for w in xnode.witnesses.latest(NORTH)] == [SOUTH]
    assert [w.subject for w in xnode.witnesses.latest(SOUTH)] == [NORTH]
    assert entries(xnode, SOUTH, "witness.checkpoint")[-1].details["via"] == "exchange"


def test_audit_verify_with_witnesses_checks_every_partners_checkpoints(
        xnode: Node, transport: httpx.BaseTransport) -> None:
    witnessing.exchange(xnode, NORTH, transport=transport)
    xnode.audit.append(NORTH, "alice", "holding.view", "h_1")
    witnessing.exchange(xnode, NORTH, transport=transport)
    report = _verify(xnode, NORTH, transport)
    assert report["verified"] is True
    assert report["witnesses"] == [{"partner": SOUTH, "checkpoints": 2, "error": None}]


def test_a_rewritten_history_is_caught_by_the_partners_checkpoints(
        xnode: Node, transport: httpx.BaseTransport) -> None:
    xnode.audit.append(NORTH, "alice", "holding.export", "h_secret")
    witnessing.exchange(xnode, NORTH, transport=transport)
    size = xnode.witnesses.held(SOUTH, NORTH)[0].size
    _rewrite_history(xnode, NORTH, size + 3)
    # Alone, the rewritten log verifies: every hash was recomputed and every checkpoint signed again.
    assert xnode.audit_verify(Actor.operator(NORTH)).size == size + 3
    with pytest.raises(AuditTampered, match="does not match the log"):
        _verify(xnode, NORTH, transport)


def test_a_partner_that_cannot_be_asked_is_named(xnode: Node) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    report = _verify(xnode, NORTH, httpx.MockTransport(refuse))
    assert report["witnesses"][0]["partner"] == SOUTH and "could not" in report["witnesses"][0]["error"].lower()


def test_a_checkpoint_exchange_from_an_unknown_sender_is_refused_and_audited(
        xnode: Node, transport: httpx.BaseTransport) -> None:
    # South-fen forgets north-wold: its next exchange is refused at the gate, and nothing is kept.
    with xnode.db.engine.begin() as conn:
        conn.execute(t.partners.delete().where(t.partners.c.org_id == SOUTH))
    results = witnessing.exchange(xnode, NORTH, transport=transport)
    assert results[0].partner == SOUTH and results[0].error is not None and NORTH in results[0].error
    assert xnode.witnesses.held(SOUTH, NORTH) == []
    refused = entries(xnode, SOUTH, "exchange.refused")
    assert refused and refused[-1].details["code"] == "unknown_sender"
