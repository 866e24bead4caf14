"""The recipient's inbox, driven directly with manifests and payloads the outbox made, on both backends."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from civicshare.access import Actor
from civicshare.canonical import canonical_json
from civicshare.errors import Conflict, DigestMismatch, IntegrityError, ManifestRefused, NotForUs, NotFound, PartRefused
from civicshare.exchange.inbox import Inbox, creator_name
from civicshare.exchange.payload import open_payload
from civicshare.exchange.receipt import check_receipt, parse_receipt
from civicshare.exchange.transfers import Transfer
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.transfer_support import DOCUMENT, NORTH, SOUTH, document, entries, pin, xnode

__all__ = ["xnode"]  # fixture

PART = 1024


def _queued(node: Node, agreement: str) -> tuple[Transfer, bytes]:
    transfer = node.exchange.outbox.share(actor(NORTH), document(node).id, SOUTH, part_size=PART,
                                          agreement=agreement)
    return transfer, (node.layout.home / (transfer.payload or "")).read_bytes()


def _part(payload: bytes, n: int) -> bytes:
    return payload[n * PART:(n + 1) * PART]


def _send_all(inbox: Inbox, transfer: Transfer, payload: bytes) -> None:
    inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    for n in range(transfer.manifest.part_count):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, _part(payload, n))


def test_manifest_is_idempotent_and_a_second_one_is_refused(xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    status = inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    assert status == {"version": 1, "transfer": transfer.id, "state": "receiving", "parts_received": [],
                      "receipt": None}
    inbox.put_part(SOUTH, NORTH, transfer.id, 1, _part(payload, 1))
    pretty = json.dumps(transfer.manifest_document, indent=2).encode()  # the same manifest, laid out otherwise
    assert inbox.put_manifest(SOUTH, NORTH, transfer.id, pretty)["parts_received"] == [1]

    other, _ = _queued(xnode, agreement)
    with pytest.raises(ManifestRefused, match="does not verify|different manifest|is for transfer"):
        inbox.put_manifest(SOUTH, NORTH, transfer.id, other.manifest_text.encode())
    forged = transfer.manifest_document
    forged["body"]["holding"]["name"] = "Something else"
    with pytest.raises(ManifestRefused, match="does not verify"):
        inbox.put_manifest(SOUTH, NORTH, transfer.id, canonical_json(forged))
    with pytest.raises(NotFound):
        inbox.status(SOUTH, "east-marsh", transfer.id)  # another sender learns nothing of it
    with pytest.raises(NotFound):
        inbox.status(SOUTH, NORTH, "../../etc")
    assert [e.details["code"] for e in entries(xnode, SOUTH, "transfer.refused")] == [
        "manifest_refused", "manifest_refused"]


def test_a_manifest_for_someone_else_is_not_for_us(xnode: Node, agreement: str) -> None:
    xnode.add_organisation("east-marsh", "East Marsh Council", url="http://civicshare.test")
    pin(xnode, "east-marsh", NORTH)
    transfer, _ = _queued(xnode, agreement)
    with pytest.raises(NotForUs, match="addressed to south-fen"):
        Inbox(xnode).put_manifest("east-marsh", NORTH, transfer.id, transfer.manifest_text.encode())
    assert Inbox(xnode).entries(Actor.operator("east-marsh")) == []


def test_parts_are_checked_before_they_are_staged(xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    count = transfer.manifest.part_count
    with pytest.raises(PartRefused, match="no part"):
        inbox.put_part(SOUTH, NORTH, transfer.id, count, b"x")
    with pytest.raises(PartRefused, match="bytes; its manifest says"):
        inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0)[:-1])
    flipped = bytearray(_part(payload, 0))
    flipped[10] ^= 1
    with pytest.raises(DigestMismatch):
        inbox.put_part(SOUTH, NORTH, transfer.id, 0, bytes(flipped))
    assert inbox.status(SOUTH, NORTH, transfer.id)["parts_received"] == []
    assert inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))["stored"] is True
    assert inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))["stored"] is True  # again: acknowledged
    [row] = inbox.entries(actor(SOUTH))
    assert row.bytes_received == PART  # counted once
    codes = [e.details["code"] for e in entries(xnode, SOUTH, "transfer.refused")]
    assert codes == ["part_refused", "part_refused", "digest_mismatch"]
    staged = xnode.layout.staging_dir(SOUTH) / transfer.id
    assert sorted(p.name for p in staged.iterdir()) == ["part-0"]
    with pytest.raises(Conflict, match=r"parts 1, 2"):
        inbox.commit(SOUTH, NORTH, transfer.id)


def test_commit_stores_once_and_answers_the_same_receipt(xnode: Node, agreement: str,
                                                        tmp_path: Path) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    _send_all(inbox, transfer, payload)
    first = inbox.commit(SOUTH, NORTH, transfer.id)
    receipt, _doc = parse_receipt(first["receipt"], recipient_key=xnode.trust.partner(NORTH, SOUTH).signing_key)
    check_receipt(receipt, transfer.manifest, transfer.manifest_document)
    assert inbox.commit(SOUTH, NORTH, transfer.id) == first
    assert inbox.status(SOUTH, NORTH, transfer.id)["state"] == "delivered"
    inbox.put_part(SOUTH, NORTH, transfer.id, 0, _part(payload, 0))  # a late repeat: acknowledged, not staged
    assert not (xnode.layout.staging_dir(SOUTH) / transfer.id).exists()
    assert [h.id for h in xnode.list_holdings(actor(SOUTH))] == [receipt.holding]
    out = tmp_path / "copy.bin"
    xnode.export(actor(SOUTH), receipt.holding, out)
    assert out.read_bytes() == DOCUMENT


def test_concurrent_commits_make_one_holding(xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    _send_all(inbox, transfer, payload)
    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(inbox.commit(SOUTH, NORTH, transfer.id)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert len(xnode.list_holdings(actor(SOUTH))) == 1
    assert len(entries(xnode, SOUTH, "transfer.receive")) == 1


def test_a_crash_after_storing_is_adopted_not_repeated(xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    _send_all(inbox, transfer, payload)
    # The commit that crashed: the holding was stored, the inbox row never updated.
    with (xnode.layout.home / (transfer.payload or "")).open("rb") as source:
        stored = open_payload(xnode, SOUTH, source, transfer.manifest, actor_name=creator_name(transfer.id, NORTH))
    answer = inbox.commit(SOUTH, NORTH, transfer.id)
    assert answer["receipt"]["body"]["holding"] == stored.id
    assert [h.id for h in xnode.list_holdings(actor(SOUTH))] == [stored.id]


def test_a_staged_part_damaged_where_the_key_is_wrapped_is_damage_not_a_payload_for_someone_else(
        xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    _send_all(inbox, transfer, payload)
    part = xnode.layout.staging_dir(SOUTH) / transfer.id / "part-0"
    damaged = bytearray(part.read_bytes())
    stanza = damaged.index(b"-> X25519 ") + len(b"-> X25519 ")
    damaged[stanza + 3] ^= 0x01  # the age command now finds no identity that opens it
    part.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError) as caught:
        inbox.commit(SOUTH, NORTH, transfer.id)
    assert not isinstance(caught.value, NotForUs)
    assert [p.field for p in caught.value.problems] == ["parts.sha256[0]"]
    # Damage on the disk leaves the transfer open for the sender to send the parts again.
    assert inbox.status(SOUTH, NORTH, transfer.id)["state"] == "receiving"
    _send_all(inbox, transfer, payload)
    assert inbox.commit(SOUTH, NORTH, transfer.id)["receipt"] is not None


def test_damaged_parts_are_dropped_and_can_be_sent_again(xnode: Node, agreement: str) -> None:
    inbox = Inbox(xnode)
    transfer, payload = _queued(xnode, agreement)
    _send_all(inbox, transfer, payload)
    part = xnode.layout.staging_dir(SOUTH) / transfer.id / "part-1"
    damaged = bytearray(part.read_bytes())
    damaged[5] ^= 0xFF
    part.write_bytes(bytes(damaged))  # damaged on the disk after it was checked
    with pytest.raises(IntegrityError) as caught:
        inbox.commit(SOUTH, NORTH, transfer.id)
    assert [p.field for p in caught.value.problems] == ["parts.sha256[1]"]  # named when it was read back
    assert inbox.status(SOUTH, NORTH, transfer.id) == {
        "version": 1, "transfer": transfer.id, "state": "receiving", "parts_received": [], "receipt": None}
    assert xnode.list_holdings(actor(SOUTH)) == []
    assert entries(xnode, SOUTH, "transfer.refused")[-1].details["code"] == "integrity"
    _send_all(inbox, transfer, payload)
    assert inbox.commit(SOUTH, NORTH, transfer.id)["receipt"] is not None
    assert len(xnode.list_holdings(actor(SOUTH))) == 1
