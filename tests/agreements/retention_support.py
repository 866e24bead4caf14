"""A node whose clock the test moves, hosting two partners that pin each other; sharing under an agreement.

Like ``xnode`` in tests/exchange/transfer_support.py, but with a settable clock, so retention ends,
agreements expire and certificates fall overdue when the test says. Requests between the two
organisations go through the node's own application (the gate and routes included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from civicshare.access import Actor, Role
from civicshare.agreements.register import AgreementRecord
from civicshare.agreements.retention import RETENTION_ACTOR
from civicshare.db import tables as t
from civicshare.exchange.transfers import InboundTransfer, Transfer
from civicshare.node import Node
from tests.agreements.lifecycle_support import activate, send_notices
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, dataset

FIELDS = ["surname", "postcode"]


# The clocked node and its transport are lifecycle_support's ``cnode`` and ``ctransport``.


def share_delivered(node: Node, transport: httpx.BaseTransport, tmp_path: Path, **agreement: Any,
                    ) -> tuple[AgreementRecord, Transfer]:
    """North-wold shares its Residents with south-fen under a new active agreement; delivered."""
    record = activate(node, transport, NORTH, [SOUTH], dataset="Residents", fields=FIELDS, **agreement)
    holding = dataset(node, tmp_path)
    transfer = node.share(actor(NORTH), holding.id, SOUTH, agreement=record.id)
    assert node.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    return record, node.transfer(actor(NORTH), transfer.id)


def ledger(node: Node, transfer_id: str) -> Transfer:
    return node.transfer(actor(NORTH), transfer_id)


def inbound(node: Node, transfer_id: str) -> InboundTransfer:
    return next(i for i in node.inbox(actor(SOUTH)) if i.transfer_id == transfer_id)


def certificates(node: Node) -> list[Any]:
    """South-fen's deletion certificate notices, sent or not."""
    return [n for n in node.notices.list(SOUTH) if n.kind == "deletion-certificate"]


def shredded(node: Node, holding_id: str) -> bool:
    with node.db.engine.connect() as conn:
        row = conn.execute(select(t.holdings.c.shredded_at, t.keys.c.state, t.keys.c.material).join(
            t.keys, t.keys.c.id == t.holdings.c.key_id).where(t.holdings.c.id == holding_id)).one()
    assert (row.shredded_at is None) == (row.state != "destroyed") == (row.material is not None), row
    return row.shredded_at is not None


def system(org: str) -> Actor:
    return Actor(org, RETENTION_ACTOR, Role.ADMIN)


__all__ = ["certificates", "inbound", "ledger", "send_notices", "share_delivered",
           "shredded", "system"]
