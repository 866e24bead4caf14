"""The sender's outbox and the delivery worker, on SQLite and PostgreSQL.

The worker talks to the node's own API (in-process transport): north-wold sends to south-fen through
the real gate and inbox, so every state below is reached the way a real delivery reaches it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from civicshare.access import Actor, Role
from civicshare.db import tables as t
from civicshare.errors import NotFound, PermissionDenied, StillPending, UnknownSender
from civicshare.exchange.inbox import Inbox
from civicshare.exchange.manifest import manifest_sha256
from civicshare.exchange.receipt import check_receipt, parse_receipt
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.transfer_support import (
    DOCUMENT,
    NORTH,
    SOUTH,
    agree,
    dataset,
    document,
    entries,
    outbox_files,
)


def _refuse_connections(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_share_then_deliver_a_document(xnode: Node, transport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = document(xnode)
    agreement = agree(xnode, transport)
    transfer = xnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement)
    assert (transfer.state, transfer.route, transfer.attempts, transfer.bytes_sent) == ("queued", "network", 0, 0)
    assert transfer.manifest.ciphertext.size == transfer.size > len(DOCUMENT)
    assert outbox_files(xnode) == [xnode.layout.outbox_dir(NORTH) / f"{transfer.id}.age"]
    created = entries(xnode, NORTH, "transfer.create")[-1]
    assert created.object == transfer.id and created.details["recipient"] == SOUTH
    assert created.details["agreement"] == agreement and created.details["kind"] == "document"
    record = xnode.agreement_register.find(NORTH, agreement)
    assert (created.details["agreement_version"], created.details["agreement_hash"]) == (1, record.hash)
    assert transfer.manifest.agreement.to_body() == {"id": agreement, "version": 1, "sha256": record.hash}
    assert (transfer.agreement, transfer.agreement_version, transfer.agreement_hash) == (agreement, 1, record.hash)

    outcomes = xnode.exchange.worker(transport=transport).run_once()
    assert outcomes == {transfer.id: "delivered"}
    done = xnode.transfer(actor(NORTH), transfer.id)
    assert (done.state, done.attempts, done.bytes_sent, done.last_error) == ("delivered", 1, done.size, None)
    assert outbox_files(xnode) == []  # the sealed copy goes once the receipt verified

    south = xnode.trust.partner(NORTH, SOUTH)
    receipt, receipt_doc = parse_receipt(done.receipt or {}, recipient_key=south.signing_key)
    check_receipt(receipt, done.manifest, done.manifest_document)
    assert receipt.manifest_sha256 == manifest_sha256(done.manifest_document)
    with xnode.db.engine.connect() as conn:
        witnessed = conn.execute(select(t.witnessed_checkpoints).where(
            t.witnessed_checkpoints.c.org_id == NORTH, t.witnessed_checkpoints.c.subject == SOUTH)).all()
    assert receipt.checkpoint in [w.note for w in witnessed]

    [arrived] = xnode.inbox(actor(SOUTH))
    assert (arrived.state, arrived.sender, arrived.holding_id) == ("delivered", NORTH, receipt.holding)
    out = tmp_path / "copy.bin"
    xnode.export(actor(SOUTH), receipt.holding, out)
    assert out.read_bytes() == DOCUMENT

    sends = entries(xnode, NORTH, "transfer.send")
    assert [(e.details["attempt"], e.details["outcome"]) for e in sends] == [(1, "delivered")]
    assert entries(xnode, NORTH, "transfer.delivered")[-1].object == transfer.id
    assert entries(xnode, SOUTH, "transfer.receive")[-1].details["holding"] == receipt.holding
    assert xnode.exchange.worker(transport=transport).run_once() == {}  # nothing left to do


def test_a_dataset_arrives_with_its_rows(xnode: Node, transport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = dataset(xnode, tmp_path)
    transfer = xnode.share(actor(NORTH), holding.id, SOUTH, agreement=agree(xnode, transport, dataset="Residents"))
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    [arrived] = xnode.inbox(actor(SOUTH))
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    xnode.export(actor(NORTH), holding.id, ours)
    xnode.export(actor(SOUTH), arrived.holding_id or "", theirs)
    assert theirs.read_text(encoding="utf-8") == ours.read_text(encoding="utf-8")
    assert arrived.to_json()["rows"] == 3


def test_a_failed_share_leaves_nothing(xnode: Node, transport: httpx.BaseTransport) -> None:
    holding = document(xnode)
    agreement = agree(xnode, transport)
    with pytest.raises(NotFound):
        xnode.share(actor(NORTH), "h_doesnotexist", SOUTH, agreement=agreement)
    with pytest.raises(UnknownSender):
        xnode.share(actor(NORTH), holding.id, "east-marsh", agreement=agreement)
    with pytest.raises(PermissionDenied):
        xnode.share(actor(NORTH, Role.CASEWORKER), holding.id, SOUTH, agreement=agreement)
    assert xnode.transfers(actor(NORTH)) == [] and outbox_files(xnode) == []
    refused = entries(xnode, NORTH, "transfer.create")
    assert [e.outcome for e in refused] == ["refused", "refused", "refused"]


def test_faults_are_retried_with_backoff_then_delivered(xnode: Node, transport: httpx.BaseTransport) -> None:
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agree(xnode, transport))
    down = xnode.exchange.worker(retry_base=0.2, transport=httpx.MockTransport(_refuse_connections))
    assert down.run_once() == {transfer.id: "retry"}
    after = xnode.transfer(actor(NORTH), transfer.id)
    assert (after.state, after.attempts) == ("sending", 1)
    assert after.last_error and "could not be reached" in after.last_error
    assert after.next_attempt_at is not None
    delay = (after.next_attempt_at - after.updated_at).total_seconds()
    assert 0.1 <= delay <= 0.2
    assert down.run_once() == {}  # not due yet
    time.sleep(0.25)
    assert down.run_once() == {transfer.id: "retry"}
    second = xnode.transfer(actor(NORTH), transfer.id)
    assert second.attempts == 2
    assert 0.2 <= (second.next_attempt_at - second.updated_at).total_seconds() <= 0.4  # type: ignore[operator]
    # The first pass after a restart does not wait for the backoff.
    up = xnode.exchange.worker(transport=transport)
    assert up.run_once(recover=True) == {transfer.id: "delivered"}
    assert xnode.transfer(actor(NORTH), transfer.id).attempts == 3
    outcomes = [e.details["outcome"] for e in entries(xnode, NORTH, "transfer.send")]
    assert outcomes == ["retry", "retry", "delivered"]


def test_backoff_doubles_and_is_capped(xnode: Node) -> None:
    worker = xnode.exchange.worker(retry_base=2.0)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (5, 32.0), (9, 300.0), (40, 300.0)]:
        delay = worker.backoff(attempts)
        assert ceiling / 2 <= delay <= ceiling


def test_a_permanent_refusal_fails_the_transfer(xnode: Node, transport: httpx.BaseTransport) -> None:
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agree(xnode, transport))
    # south-fen no longer trusts north-wold: its gate refuses every request as unknown_sender.
    with xnode.db.engine.begin() as conn:
        conn.execute(t.partners.delete().where(t.partners.c.org_id == SOUTH))
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "failed"}
    failed = xnode.transfer(actor(NORTH), transfer.id)
    assert failed.state == "failed" and failed.failed_reason and "unknown_sender" in failed.failed_reason
    assert outbox_files(xnode) == []
    assert entries(xnode, NORTH, "transfer.failed")[-1].object == transfer.id
    assert entries(xnode, SOUTH, "exchange.refused")[-1].details["code"] == "unknown_sender"
    assert xnode.exchange.worker(transport=transport).run_once(recover=True) == {}


def test_waiting_follows_the_ledger_until_a_final_state_or_the_timeout(
        xnode: Node, transport: httpx.BaseTransport) -> None:
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agree(xnode, transport))
    seen: list[str] = []
    with pytest.raises(StillPending, match="still queued"):
        xnode.exchange.wait(actor(NORTH), transfer.id, timeout=0, on_change=lambda t: seen.append(t.state))
    assert seen == ["queued"]
    xnode.exchange.worker(transport=transport).run_once()
    done = xnode.exchange.wait(actor(NORTH), transfer.id, timeout=0, on_change=lambda t: seen.append(t.state))
    assert done.state == "delivered" and seen == ["queued", "delivered"]


def test_only_missing_parts_are_sent(xnode: Node, transport: httpx.BaseTransport) -> None:
    transfer = xnode.exchange.outbox.share(actor(NORTH), document(xnode).id, SOUTH, part_size=1024,
                                           agreement=agree(xnode, transport))
    manifest = transfer.manifest
    assert manifest.part_count >= 6  # 5,896 bytes and the age header, in parts of 1 KiB
    # An earlier attempt got the manifest and parts 0 and 3 across before the connection broke.
    inbox = Inbox(xnode)
    inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    payload = (xnode.layout.home / (transfer.payload or "")).read_bytes()
    for n in (0, 3):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, payload[n * 1024:(n + 1) * 1024])
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    [send] = entries(xnode, NORTH, "transfer.send")
    assert send.details["parts_sent"] == manifest.part_count - 2


def test_one_attempt_per_claim(xnode: Node, transport: httpx.BaseTransport) -> None:
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agree(xnode, transport))
    outbox = xnode.exchange.outbox
    first = outbox.claim(transfer, xnode.clock())
    assert first is not None and first.state == "sending" and first.attempts == 1
    assert outbox.claim(transfer, xnode.clock()) is None  # the same snapshot, a second worker: refused
    assert outbox.due(xnode.clock()) == []  # held by the first worker's lease
    assert [d.id for d in outbox.due(xnode.clock(), recover=True)] == [transfer.id]


def test_offline_package_and_receipt(xnode: Node, transport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = document(xnode)
    package = tmp_path / "for-south-fen.tar"
    transfer = xnode.share(actor(NORTH), holding.id, SOUTH, out=package, agreement=agree(xnode, transport))
    assert (transfer.state, transfer.route, transfer.payload) == ("exported", "offline", None)
    assert package.exists() and outbox_files(xnode) == []
    assert xnode.exchange.outbox.due(xnode.clock(), recover=True) == []  # never sent over the network

    south = Actor.operator(SOUTH)
    first = xnode.receive(south, package)
    receipt_file = Path(first["receipt"])
    assert receipt_file == tmp_path / "for-south-fen.tar.receipt.json"
    saved = receipt_file.read_bytes()
    again = xnode.receive(south, package)
    assert again["holding"] == first["holding"] and receipt_file.read_bytes() == saved
    assert len(xnode.list_holdings(actor(SOUTH))) == 1

    closed = xnode.receive(Actor.operator(NORTH), receipt_file)
    assert closed["state"] == "delivered"
    assert xnode.transfer(actor(NORTH), transfer.id).state == "delivered"
    assert xnode.receive(Actor.operator(NORTH), receipt_file)["state"] == "delivered"  # harmless repeat
    assert len(entries(xnode, NORTH, "transfer.delivered")) == 1
