"""Sealing keys: the recipient makes a document's data key, the sender seals to it, and the ciphertext
that arrives is kept as the new holding's blob. On SQLite and PostgreSQL, through the node's own API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from civicshare.access import Role
from civicshare.db import tables as t
from civicshare.errors import Conflict, IntegrityError, InvalidInput, NotFound, SecurityError
from civicshare.exchange import sealing_keys
from civicshare.exchange.sealing_keys import SealingKey, ask, parse_sealing_key, sign_sealing_key
from civicshare.exchange.transfers import Transfer
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.transfer_support import DOCUMENT, NORTH, SOUTH, dataset, document, entries, outbox_files

TRANSFER = "t_sealingkeytest1"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def _share(node: Node, agreement: str, transport: httpx.BaseTransport, holding_id: str | None = None) -> Transfer:
    with node.partner_client(transport=transport) as partners:
        return node.exchange.outbox.share(actor(NORTH), holding_id or document(node).id, SOUTH,
                                          agreement=agreement, part_size=1024, partners=partners)


def _card_key(node: Node) -> str:
    return node.trust.partner(NORTH, SOUTH).age_recipient


def _key_state(node: Node, key_id: str) -> tuple[str, bool]:
    with node.db.engine.connect() as conn:
        row = conn.execute(select(t.keys.c.state, t.keys.c.material).where(t.keys.c.id == key_id)).one()
    return row.state, row.material is not None


def test_a_document_sealed_to_the_recipients_key_is_kept_as_it_arrived(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    transfer = _share(xnode, agreement, transport)
    reserved = xnode.exchange.inbox.sealing.find(SOUTH, transfer.id)
    assert reserved is not None and reserved.sender == NORTH
    assert transfer.manifest.age_recipient == reserved.age_recipient != _card_key(xnode)
    assert entries(xnode, NORTH, "transfer.create")[-1].details["sealed_to"] == "sealing key"
    made = [e for e in entries(xnode, SOUTH, "key.create") if e.object == reserved.key_id]
    assert [e.details["sealing_key_for"] for e in made] == [transfer.id]
    [payload] = outbox_files(xnode)
    sealed = payload.read_bytes()

    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    [arrived] = xnode.inbox(actor(SOUTH))
    assert arrived.holding_id == reserved.holding_id
    holding = xnode.holdings.get(actor(SOUTH), reserved.holding_id)
    assert holding.key_id == reserved.key_id and holding.sha256 == transfer.manifest.plaintext.sha256
    # The blob is the ciphertext the sender sealed, byte for byte; it opens with the holding's own key.
    assert (xnode.layout.home / holding.blob).read_bytes() == sealed
    out = xnode.layout.home / "copy.bin"
    xnode.export(actor(SOUTH), holding.id, out)
    assert out.read_bytes() == DOCUMENT
    # One key, registered once: when it was made, not again when the holding was stored.
    assert [e.object for e in entries(xnode, SOUTH, "key.create")].count(reserved.key_id) == 1
    assert _key_state(xnode, reserved.key_id) == ("active", True)


def test_the_same_transfer_gets_the_same_key_and_nobody_else_gets_it(xnode: Node) -> None:
    sealing = xnode.exchange.inbox.sealing
    first = sealing.issue(SOUTH, NORTH, TRANSFER)
    assert sealing.issue(SOUTH, NORTH, TRANSFER) == first
    south = xnode.trust.partner(NORTH, SOUTH)
    key = parse_sealing_key(first["sealing_key"], recipient_key=south.signing_key)
    assert (key.transfer, key.sender, key.recipient) == (TRANSFER, NORTH, SOUTH)
    with pytest.raises(NotFound):
        sealing.issue(SOUTH, "east-marsh", TRANSFER)
    with pytest.raises(NotFound):
        sealing.issue(SOUTH, NORTH, "../../etc")
    refused = [e for e in entries(xnode, SOUTH, "transfer.refused") if e.details.get("step") == "sealing-key"]
    assert [e.details["code"] for e in refused] == ["not_found", "not_found"]


def test_no_key_is_made_for_a_transfer_that_has_begun(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agreement)  # to the card's key
    xnode.exchange.inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    with pytest.raises(Conflict, match="has begun"):
        xnode.exchange.inbox.sealing.issue(SOUTH, NORTH, transfer.id)


def test_a_sender_holds_only_so_many_unused_keys_and_old_ones_are_destroyed(
        xnode: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing_keys, "MAX_OPEN", 2)
    sealing = xnode.exchange.inbox.sealing
    sealing.issue(SOUTH, NORTH, "t_first")
    sealing.issue(SOUTH, NORTH, "t_second")
    with pytest.raises(Conflict, match="holds 2 sealing keys"):
        sealing.issue(SOUTH, NORTH, "t_third")
    old = sealing.find(SOUTH, "t_first")
    assert old is not None
    with xnode.db.engine.begin() as conn:
        conn.execute(update(t.sealing_keys).where(t.sealing_keys.c.transfer_id == "t_first").values(
            created_at=xnode.clock() - sealing_keys.UNUSED_FOR - timedelta(minutes=1)))
    sealing.issue(SOUTH, NORTH, "t_third")  # the stale one made room
    assert sealing.find(SOUTH, "t_first") is None
    assert _key_state(xnode, old.key_id) == ("destroyed", False)
    assert [e.details["reason"] for e in entries(xnode, SOUTH, "key.destroy") if e.object == old.key_id] == [
        "not used"]


def test_a_key_discarded_with_its_refused_transfer_is_destroyed(xnode: Node) -> None:
    sealing = xnode.exchange.inbox.sealing
    sealing.issue(SOUTH, NORTH, TRANSFER)
    reserved = sealing.find(SOUTH, TRANSFER)
    assert reserved is not None
    sealing.discard(SOUTH, TRANSFER)
    assert sealing.find(SOUTH, TRANSFER) is None
    assert _key_state(xnode, reserved.key_id) == ("destroyed", False)


def test_a_key_whose_transfer_came_sealed_to_the_card_key_is_destroyed(
        xnode: Node, agreement: str) -> None:
    # The sealing key's answer was lost on the way, so the sender sealed to the card's key.
    transfer = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agreement)
    sealing = xnode.exchange.inbox.sealing
    sealing.issue(SOUTH, NORTH, transfer.id)
    reserved = sealing.find(SOUTH, transfer.id)
    assert reserved is not None
    xnode.exchange.inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    assert sealing.find(SOUTH, transfer.id) is None
    assert _key_state(xnode, reserved.key_id) == ("destroyed", False)


def test_a_kek_rotation_between_the_key_and_the_arrival_loses_nothing(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    transfer = _share(xnode, agreement, transport)
    xnode.rotate_kek(actor(SOUTH, Role.ADMIN))
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    [arrived] = xnode.inbox(actor(SOUTH))
    out = xnode.layout.home / "copy.bin"
    xnode.export(actor(SOUTH), arrived.holding_id or "", out)
    assert out.read_bytes() == DOCUMENT


def test_what_a_killed_commit_left_at_the_reserved_blob_is_replaced(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    transfer = _share(xnode, agreement, transport)
    reserved = xnode.exchange.inbox.sealing.find(SOUTH, transfer.id)
    assert reserved is not None
    blob = xnode.layout.blob_dir(SOUTH) / f"{reserved.holding_id}.age"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"half")
    blob.with_name(blob.name + ".partial").write_bytes(b"written")
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    assert blob.read_bytes()[:21] == b"age-encryption.org/v1"
    assert not blob.with_name(blob.name + ".partial").exists()


def test_an_unreachable_partner_means_the_receiving_key_on_its_card(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transfer = _share(xnode, agreement, httpx.MockTransport(refuse))
    assert transfer.manifest.age_recipient == _card_key(xnode)
    details = entries(xnode, NORTH, "transfer.create")[-1].details
    assert details["sealed_to"] == "receiving key" and "could not be reached" in details["sealing_key_refused"]
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "delivered"}
    assert xnode.exchange.inbox.sealing.find(SOUTH, transfer.id) is None


def test_a_dataset_is_sealed_to_the_card_key(
        xnode: Node, transport: httpx.BaseTransport, tmp_path: Path) -> None:
    from tests.exchange.transfer_support import agree

    agreement = agree(xnode, transport, dataset="Residents")
    transfer = _share(xnode, agreement, transport, dataset(xnode, tmp_path).id)
    assert transfer.manifest.age_recipient == _card_key(xnode)
    assert xnode.exchange.inbox.sealing.find(SOUTH, transfer.id) is None


def _answering(document: Any) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": 1, "transfer": TRANSFER, "sealing_key": document})
    return handler


def _ask(node: Node, handler: Callable[[httpx.Request], httpx.Response]) -> str:
    with node.partner_client(transport=httpx.MockTransport(handler)) as client:
        return ask(node, client, NORTH, SOUTH, TRANSFER)


def _signed_by_south(node: Node, key: SealingKey) -> dict[str, Any]:
    key_id, _public = node.keys.signing_key(SOUTH)
    store = node.keystore(SOUTH)
    return sign_sealing_key(key, key_id, lambda data: store.sign(key_id, data))


def test_the_sender_takes_only_a_key_the_recipient_signed_for_this_transfer(xnode: Node) -> None:
    now = xnode.clock().replace(microsecond=0)
    good = SealingKey(TRANSFER, NORTH, SOUTH, RECIPIENT, now)
    assert _ask(xnode, _answering(_signed_by_south(xnode, good))) == RECIPIENT
    # Signed by someone on the path, not by south-fen's pinned key.
    forged = sign_sealing_key(good, "k_x", Ed25519PrivateKey.generate().sign)
    with pytest.raises(SecurityError):
        _ask(xnode, _answering(forged))
    # Signed by south-fen, but for another transfer: replayed from elsewhere.
    other = _signed_by_south(xnode, SealingKey("t_another", NORTH, SOUTH, RECIPIENT, now))
    with pytest.raises(IntegrityError, match="not this one"):
        _ask(xnode, _answering(other))
    with pytest.raises(InvalidInput):
        _ask(xnode, _answering(None))


@given(transfer=st.from_regex(r"t_[a-z0-9]{1,38}", fullmatch=True), seconds=st.integers(0, 10**9))
def test_a_sealing_key_reads_back_as_written(transfer: str, seconds: int) -> None:
    from datetime import UTC, datetime

    key = SealingKey(transfer, NORTH, SOUTH, RECIPIENT, datetime.fromtimestamp(seconds, UTC))
    private = Ed25519PrivateKey.generate()
    document = sign_sealing_key(key, "k_1", private.sign)
    public = private.public_key().public_bytes_raw()
    assert parse_sealing_key(json.dumps(document), recipient_key=public) == key
    tampered = {**document, "body": {**document["body"], "transfer": "t_other"}}
    with pytest.raises(SecurityError):
        parse_sealing_key(tampered, recipient_key=public)


def test_a_damaged_payload_in_the_outbox_fails_the_transfer_with_the_reason(
        xnode: Node, transport: httpx.BaseTransport, agreement: str) -> None:
    # As a machine stopping before the payload reached the disk can leave it: the bytes are not those sealed.
    transfer = _share(xnode, agreement, transport)
    [payload] = outbox_files(xnode)
    data = bytearray(payload.read_bytes())
    data[transfer.manifest.part_size + 7] ^= 0x55
    payload.write_bytes(bytes(data))
    assert xnode.exchange.worker(transport=transport).run_once() == {transfer.id: "failed"}
    failed = xnode.transfer(actor(NORTH), transfer.id)
    assert "part 1 no longer matches its hash" in (failed.failed_reason or "")
    assert xnode.inbox(actor(SOUTH))[0].state == "receiving"
