"""Fixity: a document's SHA-256 is recorded when it is imported or received, shown with the holding,
and spares the sender from measuring the plaintext again when it seals the document for a partner."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from sqlalchemy import update

from civicshare.db import tables as t
from civicshare.errors import IntegrityError
from civicshare.exchange.fields import Digest
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.payload_support import NORTH, SOUTH, left_behind, make_document, open_at_south, seal_for_south


def _set_fixity(node: Node, holding_id: str, sha256: str | None) -> None:
    with node.db.engine.begin() as conn:
        conn.execute(update(t.holdings).where(t.holdings.c.id == holding_id).values(sha256=sha256))


def test_import_records_the_documents_sha256(node: Node) -> None:
    data = os.urandom(150_000)
    holding = node.holding(actor(NORTH), make_document(node, data))
    assert holding.sha256 == hashlib.sha256(data).hexdigest()
    assert holding.to_json()["sha256"] == holding.sha256


def test_a_document_with_fixity_is_sealed_without_measuring_and_arrives_with_the_same_fixity(
        node: Node, tmp_path: Path) -> None:
    data = os.urandom(700_000)
    hid = make_document(node, data)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age", part_size=65536)
    assert sealed.plaintext == Digest(len(data), hashlib.sha256(data).hexdigest())
    # The ciphertext was measured from the file the age command wrote: every part and the whole.
    payload = sealed.path.read_bytes()
    assert sealed.ciphertext == Digest(len(payload), hashlib.sha256(payload).hexdigest())
    assert sealed.part_hashes == tuple(hashlib.sha256(payload[i:i + 65536]).hexdigest()
                                       for i in range(0, len(payload), 65536))
    received = open_at_south(node, sealed.path, manifest)
    assert received.sha256 == hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]
    out = tmp_path / "letter.pdf"
    node.export(actor(SOUTH), received.id, out)  # type: ignore[attr-defined]
    assert out.read_bytes() == data


def test_a_document_imported_before_fixity_was_recorded_is_measured_while_sealed(node: Node, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    hid = make_document(node, data)
    _set_fixity(node, hid, None)  # as a document imported before migration 0009 has it
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    assert sealed.plaintext == Digest(len(data), hashlib.sha256(data).hexdigest())
    assert open_at_south(node, sealed.path, manifest).sha256 == sealed.plaintext.sha256  # type: ignore[attr-defined]


def test_a_wrong_fixity_value_is_caught_by_the_recipient_and_leaves_nothing(node: Node, tmp_path: Path) -> None:
    # The sender trusts its record; the recipient still measures what it decrypts.
    hid = make_document(node, os.urandom(100_000))
    _set_fixity(node, hid, "0" * 64)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    before = left_behind(node)
    with pytest.raises(IntegrityError) as caught:
        open_at_south(node, sealed.path, manifest)
    assert [p.field for p in caught.value.problems] == ["plaintext.sha256"]
    assert left_behind(node) == before


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_damaged_stored_document_is_never_sealed(node: Node, tmp_path: Path, where: str) -> None:
    hid = make_document(node, os.urandom(300_000))
    blob = node.layout.home / node.holding(actor(NORTH), hid).blob
    data = bytearray(blob.read_bytes())
    data[len(data) // 2 if where == "middle" else len(data) - 3] ^= 1
    blob.write_bytes(bytes(data))
    dest = tmp_path / "payload.age"
    with pytest.raises(IntegrityError):
        seal_for_south(node, hid, dest)
    assert not dest.exists() and not list(tmp_path.glob("payload.age*"))


def test_import_fixity_is_of_the_bytes_sealed_from_a_stream(node: Node) -> None:
    class Dribble(io.RawIOBase):
        """A source handing out a few bytes at a time, as an upload pipe does."""

        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            chunk = self._src.read(min(len(b), 1000))
            b[:len(chunk)] = chunk
            return len(chunk)

    data = os.urandom(50_000)
    holding = node.import_document(actor(NORTH), io.BufferedReader(Dribble(data)), "letter.pdf")
    assert (holding.size, holding.sha256) == (len(data), hashlib.sha256(data).hexdigest())
