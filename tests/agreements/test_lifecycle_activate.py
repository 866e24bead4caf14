"""activate(): an agreement proposed, signed at both parties and in force, over the node's own exchange."""

from __future__ import annotations

import httpx

from civicshare.node import Node
from tests.agreements.lifecycle_support import activate
from tests.exchange.transfer_support import NORTH, SOUTH, entries, transport, xnode

__all__ = ["transport", "xnode"]


def test_activate_dataset_agreement(xnode: Node, transport: httpx.BaseTransport) -> None:
    record = activate(xnode, transport, NORTH, [SOUTH], dataset="Residents", fields=["surname", "postcode"])
    assert record.state == "active" and record.stop_words() is None
    assert set(record.signed_parties) == {NORTH, SOUTH}
    south = xnode.agreement_register.find(SOUTH, record.id)
    assert (south.hash, south.state, south.proposed_by) == (record.hash, "active", NORTH)
    assert xnode.agreement_register.by_hash(SOUTH, record.hash) == south
    assert xnode.notices.list(NORTH, pending_only=True) == [] == xnode.notices.list(SOUTH, pending_only=True)
    assert [e.details["kind"] for e in entries(xnode, SOUTH, "agreement.received")] == [
        "agreement-proposal", "agreement-signature"]
    # Everything went over the exchange: signed requests through the app, none refused.
    assert (len(entries(xnode, NORTH, "notice.sent")), len(entries(xnode, SOUTH, "notice.sent"))) == (2, 1)
    assert entries(xnode, NORTH, "exchange.refused") == [] == entries(xnode, SOUTH, "exchange.refused")
    assert entries(xnode, NORTH, "agreement.state")[-1].details == {"version": 1, "from": "proposed", "to": "signed"}
