"""A part leaves the sender in pieces read from the sealed payload, never whole in memory."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.errors import UsageError
from civicshare.exchange.answers import Refused
from civicshare.exchange.delivery import PIECE, _pieces
from civicshare.exchange.transfers import FINAL_POLL, next_look
from civicshare.node import Node
from tests.exchange.transfer_support import NORTH, SOUTH


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=3 * 4096), cut=st.data())
def test_pieces_are_exactly_the_bytes_of_the_part(tmp_path_factory: pytest.TempPathFactory, data: bytes,
                                                   cut: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("payload") / "sealed.age"
    path.write_bytes(data)
    start = cut.draw(st.integers(0, len(data) - 1))
    length = cut.draw(st.integers(1, len(data) - start))
    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = list(_pieces("t_test", fd, start, length))
    finally:
        os.close(fd)
    assert b"".join(pieces) == data[start:start + length]
    assert all(0 < len(p) <= PIECE for p in pieces)


def test_a_large_part_is_read_a_piece_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "sealed.age"
    data = os.urandom(2 * PIECE + 5)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        lengths = [len(p) for p in _pieces("t_test", fd, 3, len(data) - 3)]
    finally:
        os.close(fd)
    assert lengths == [PIECE, PIECE, 2]


def test_a_payload_cut_short_under_a_part_is_refused_for_good(tmp_path: Path) -> None:
    path = tmp_path / "sealed.age"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(Refused) as caught:
            list(_pieces("t_test", fd, 50, 80))
    finally:
        os.close(fd)
    assert caught.value.permanent and caught.value.code == "payload_damaged"
    assert "t_test" in caught.value.message


def test_a_body_in_pieces_goes_out_with_its_length_and_signed_digest(xnode: Node) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={})

    pieces = [os.urandom(1000), os.urandom(10), os.urandom(300)]
    body = b"".join(pieces)
    client = xnode.partner_client(transport=httpx.MockTransport(handler))
    try:
        client.request(NORTH, SOUTH, "PUT", "/transfers/t_aaaaaaaaaaaaaaaa/parts/0", content=iter(pieces),
                       content_length=len(body), content_sha256=hashlib.sha256(body).digest(),
                       content_type="application/octet-stream")
    finally:
        client.close()
    [request] = seen
    assert request.content == body
    assert request.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in request.headers  # sent as it comes, not chunk-encoded
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    assert request.headers["content-digest"] == f"sha-256=:{digest}:"  # the hash given, signed
    assert "content-digest" in request.headers["signature-input"] and "signature" in request.headers


def test_a_body_in_pieces_needs_its_length_and_hash_up_front(xnode: Node) -> None:
    client = xnode.partner_client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    try:
        with pytest.raises(UsageError, match="length and SHA-256"):
            client.request(NORTH, SOUTH, "PUT", "/transfers/t_aaaaaaaaaaaaaaaa/parts/0", content=iter([b"x"]),
                           content_length=1)
        with pytest.raises(UsageError, match="length and SHA-256"):
            client.request(NORTH, SOUTH, "PUT", "/transfers/t_aaaaaaaaaaaaaaaa/parts/0", content=iter([b"x"]),
                           content_sha256=hashlib.sha256(b"x").digest())
    finally:
        client.close()


def test_share_wait_looks_often_once_every_part_is_acknowledged() -> None:
    assert next_look(1000, 0, 0.2) == 0.2
    assert next_look(1000, 999, 0.2) == 0.2
    assert next_look(1000, 1000, 0.2) == FINAL_POLL < 0.2
    assert next_look(0, 0, 0.2) == 0.2  # nothing sealed yet
    assert next_look(1000, 1000, 0.01) == 0.01  # never slower than asked
