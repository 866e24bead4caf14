"""Opening a transfer while its parts still arrive, and checking a part by its verified digest."""

from __future__ import annotations

import hashlib
import time

import pytest

from civicshare.errors import Conflict, DigestMismatch
from civicshare.exchange import early_open, handoff
from civicshare.exchange.inbox import Inbox
from civicshare.exchange.transfers import Transfer
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, document, entries, xnode

__all__ = ["xnode"]  # fixture

PART = 1024


def _queued(node: Node, agreement: str) -> tuple[Transfer, bytes]:
    transfer = node.exchange.outbox.share(actor(NORTH), document(node).id, SOUTH, part_size=PART,
                                          agreement=agreement)
    return transfer, (node.layout.home / (transfer.payload or "")).read_bytes()


def _begun(node: Node, agreement: str) -> tuple[Inbox, Transfer, bytes]:
    """A transfer queued at the sender whose manifest the recipient's inbox has accepted."""
    inbox = Inbox(node)
    transfer, payload = _queued(node, agreement)
    inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    return inbox, transfer, payload


def _part(payload: bytes, n: int) -> bytes:
    return payload[n * PART:(n + 1) * PART]


def _wait_idle(inbox: Inbox, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while inbox.early.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not inbox.early.running, "the early opening did not finish"


def test_an_early_opening_stores_the_holding_as_the_parts_arrive(xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    assert count >= 3
    before = {h.id for h in xnode.holdings.list_holdings(actor(SOUTH))}
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))
    assert inbox.open_early(SOUTH, NORTH, transfer.id)
    assert not inbox.open_early(SOUTH, NORTH, transfer.id)  # one at a time per transfer
    # The rest arrives out of order and late: the opening waits for each in turn.
    for n in [*range(2, count), 1]:
        time.sleep(0.05)
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    _wait_idle(inbox)
    assert inbox.status(SOUTH, NORTH, transfer.id)["state"] == "delivered"
    answer = inbox.commit(SOUTH, NORTH, transfer.id)
    assert answer["receipt"] == inbox.status(SOUTH, NORTH, transfer.id)["receipt"]
    new = {h.id for h in xnode.holdings.list_holdings(actor(SOUTH))} - before
    assert new == {answer["receipt"]["body"]["holding"]}
    assert not inbox.staging.folder(SOUTH, transfer.id).exists()
    assert len(entries(xnode, SOUTH, "transfer.receive")) == 1


def test_an_early_opening_that_waits_in_vain_leaves_nothing_and_the_commit_still_opens(
        xnode: Node, agreement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_open, "PATIENCE", 0.3)
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))
    before = {h.id for h in xnode.holdings.list_holdings(actor(SOUTH))}
    assert inbox.open_early(SOUTH, NORTH, transfer.id)
    _wait_idle(inbox)
    assert inbox.status(SOUTH, NORTH, transfer.id) == {
        "version": 1, "transfer": transfer.id, "state": "receiving", "parts_received": [0], "receipt": None}
    assert {h.id for h in xnode.holdings.list_holdings(actor(SOUTH))} == before
    blobs = list(xnode.layout.home.rglob("*.partial"))
    assert blobs == []
    for n in range(1, count):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    assert inbox.commit(SOUTH, NORTH, transfer.id)["receipt"]["body"]["holding"] not in before


def test_a_commit_with_parts_missing_is_answered_at_once_while_an_early_opening_waits(
        xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))
    inbox.open_early(SOUTH, NORTH, transfer.id)
    time.sleep(0.1)  # the early opening holds the lock, waiting for part 1
    started = time.monotonic()
    with pytest.raises(Conflict, match="have not arrived"):
        inbox.commit(SOUTH, NORTH, transfer.id)
    assert time.monotonic() - started < 5
    for n in range(1, transfer.manifest.part_count):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    # The commit waits for the early opening (the lock), then answers its receipt.
    assert inbox.commit(SOUTH, NORTH, transfer.id)["transfer"] == transfer.id
    _wait_idle(inbox)


def test_a_verified_digest_stands_in_for_hashing_the_part_again(xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    part = _part(payload, 0)
    # The digest decides: a digest of other bytes is refused even though the bytes are right...
    with pytest.raises(DigestMismatch):
        inbox.put_part(SOUTH, NORTH, transfer.id, 0, part, body_sha256=hashlib.sha256(b"other").digest())
    # ... and the right one is accepted.
    assert inbox.put_part(SOUTH, NORTH, transfer.id, 0, part, body_sha256=hashlib.sha256(part).digest())["stored"]


def test_parts_an_early_opening_takes_in_memory_never_touch_the_staging_area(xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))  # before the opening: staged
    assert inbox.open_early(SOUTH, NORTH, transfer.id)
    for n in range(1, count - 1):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    staged = inbox.staging.folder(SOUTH, transfer.id)
    assert sorted(p.name for p in staged.iterdir()) == ["part-0"]
    # The status counts what the opening holds, so the sender does not send it again.
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == list(range(count - 1))
    inbox.put_part(SOUTH, NORTH, transfer.id, 1, _part(payload, 1))  # a repeat: acknowledged, counted once
    [row] = inbox.entries(actor(SOUTH))
    assert row.bytes_received == (count - 1) * PART
    inbox.put_part(SOUTH, NORTH, transfer.id, count - 1, _part(payload, count - 1))
    _wait_idle(inbox)
    assert inbox.status(SOUTH, NORTH, transfer.id)["state"] == "delivered"
    assert inbox.commit(SOUTH, NORTH, transfer.id)["receipt"]["body"]["transfer"] == transfer.id


def test_parts_held_by_an_opening_that_gave_up_are_asked_for_again(
        xnode: Node, agreement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(early_open, "PATIENCE", 0.5)
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    assert inbox.open_early(SOUTH, NORTH, transfer.id)
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))
    inbox.put_part(SOUTH, NORTH, transfer.id, 1, _part(payload, 1))
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == [0, 1]
    _wait_idle(inbox)  # part 2 never came: the opening gave up, and the parts it held are gone
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == []
    with pytest.raises(Conflict, match="have not arrived"):
        inbox.commit(SOUTH, NORTH, transfer.id)
    for n in range(count):  # the sender sends what the status lists as missing: everything
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    holding = inbox.commit(SOUTH, NORTH, transfer.id)["receipt"]["body"]["holding"]
    assert xnode.holdings.get(actor(SOUTH), holding).size == transfer.manifest.plaintext.size


def test_a_part_cut_short_on_disk_counts_as_missing_and_is_written_again(xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))
    inbox.put_part(SOUTH, NORTH, transfer.id, 1, _part(payload, 1))
    # As a power cut can leave a part that was never forced to the disk: linked, but short.
    part = inbox.staging.folder(SOUTH, transfer.id) / "part-1"
    part.write_bytes(_part(payload, 1)[:100])
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == [0]
    inbox.put_part(SOUTH, NORTH, transfer.id, 1, _part(payload, 1))
    assert part.read_bytes() == _part(payload, 1)
    for n in range(2, transfer.manifest.part_count):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))
    assert inbox.commit(SOUTH, NORTH, transfer.id)["transfer"] == transfer.id


def test_a_part_arriving_over_the_network_starts_the_opening_and_is_taken_in_memory(
        xnode: Node, agreement: str) -> None:
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    for n in range(count - 1):
        assert inbox.part_arrived(SOUTH, NORTH, transfer.id, n, _part(payload, n))["stored"]
        assert inbox.early.running == 1
    staged = inbox.staging.folder(SOUTH, transfer.id)
    assert not (staged.exists() and list(staged.iterdir()))  # every part so far is in the opening's hands
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == list(range(count - 1))
    inbox.part_arrived(SOUTH, NORTH, transfer.id, count - 1, _part(payload, count - 1))
    _wait_idle(inbox)
    assert inbox.status(SOUTH, NORTH, transfer.id)["state"] == "delivered"


def test_a_commit_that_takes_the_lock_before_the_opening_finds_every_acknowledged_part_on_disk(
        xnode: Node, agreement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a busy machine: the opening's thread has not taken the lock when the parts and the commit come.
    monkeypatch.setattr(handoff, "OFFER_WAIT", 0.2)
    inbox, transfer, payload = _begun(xnode, agreement)
    count = transfer.manifest.part_count
    with inbox.staging.locked(SOUTH, transfer.id):
        for n in range(count):
            assert inbox.part_arrived(SOUTH, NORTH, transfer.id, n, _part(payload, n))["stored"]
        assert inbox.early.running == 1  # started, waiting for the lock
        staged = inbox.staging.folder(SOUTH, transfer.id)
        assert sorted(p.name for p in staged.iterdir()) == [f"part-{n}" for n in range(count)]
    answer = inbox.commit(SOUTH, NORTH, transfer.id)
    assert answer["receipt"]["body"]["transfer"] == transfer.id
    _wait_idle(inbox)
    assert len(entries(xnode, SOUTH, "transfer.receive")) == 1
