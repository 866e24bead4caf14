"""Retention for a transfer carried on removable media, between two organisations on one node with no URL.

Neither card names an endpoint, so the package and its receipt travel by hand, and the deletion
certificate reaches the provider through the notice outbox's local handler (the same core code the
route calls). Runs on SQLite and PostgreSQL, on a clock the test moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from civicshare.crypto import KdfParams
from civicshare.node import Node
from tests.agreements.lifecycle_support import activate, clock, send_notices
from tests.agreements.retention_support import FIELDS, certificates, inbound, ledger, shredded
from tests.agreements.support import Clock
from tests.conftest import PASSPHRASE, actor
from tests.exchange.transfer_support import NORTH, SOUTH, dataset, entries, pin

__all__ = ["clock"]


@pytest.fixture
def local_node(tmp_path: Path, db_url: str | None, clock: Clock) -> Iterator[Node]:
    n = Node.init(tmp_path / "home", NORTH, "North Wold District Council", db_url=db_url, passphrase=PASSPHRASE,
                  kdf=KdfParams.fast_for_tests(), clock=clock)
    n.add_organisation(SOUTH, "South Fen Borough Council")
    pin(n, NORTH, SOUTH)
    pin(n, SOUTH, NORTH)
    yield n
    n.close()


def test_an_offline_transfer_is_deleted_and_certified(local_node: Node, clock: Clock, tmp_path: Path) -> None:
    node = local_node
    record = activate(node, None, NORTH, [SOUTH], dataset="Residents", fields=FIELDS, days_after_receipt=7)
    holding = dataset(node, tmp_path)
    sent = node.share(actor(NORTH), holding.id, SOUTH, agreement=record.id, out=tmp_path / "pkg.tar")
    clock.advance(hours=2)  # carried across the county
    node.receive(actor(SOUTH), tmp_path / "pkg.tar")
    clock.advance(days=1)  # and the receipt carried back a day later
    node.receive(actor(NORTH), tmp_path / "pkg.tar.receipt.json")
    arrived, delivered = inbound(node, sent.id), ledger(node, sent.id)
    assert arrived.completed_at is not None and delivered.delivered_at is not None
    assert arrived.retain_until == arrived.completed_at + timedelta(days=7)
    assert delivered.deletion_due_at == delivered.delivered_at + timedelta(days=7)

    clock.advance(days=6, hours=1)
    assert node.retention.sweep().deleted == [sent.id]  # 7 days after it arrived, not after the receipt
    assert shredded(node, arrived.holding_id)
    assert ledger(node, sent.id).to_json(now=clock())["deletion"]["state"] == "due"
    assert send_notices(node, None) == 1
    deletion = ledger(node, sent.id).to_json(now=clock())["deletion"]
    assert deletion["state"] == "verified" and deletion["certificate"] == inbound(node, sent.id).certificate
    assert [n.state for n in certificates(node)] == ["sent"]
    assert [e.object for e in entries(node, NORTH, "transfer.deletion")] == [sent.id]
