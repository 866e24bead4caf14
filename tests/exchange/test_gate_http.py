"""The HTTP edge of the gate: bodies refused before the signature is checked are audited too."""

from __future__ import annotations

import httpx

from civicshare.exchange.manifest import MAX_PART_SIZE
from civicshare.node import Node
from tests.exchange.transfer_support import NORTH, SOUTH, entries


def test_an_oversized_part_is_refused_and_audited_and_nothing_is_staged(
        xnode: Node, transport: httpx.BaseTransport) -> None:
    client = xnode.partner_client(transport=transport)
    try:
        response = client.request(NORTH, SOUTH, "PUT", "/transfers/t_aaaaaaaaaaaaaaaa/parts/0",
                                  content=b"\0" * (MAX_PART_SIZE + 1), content_type="application/octet-stream")
    finally:
        client.close()
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    refused = entries(xnode, SOUTH, "exchange.refused")
    assert refused and refused[-1].details["code"] == "too_large" and refused[-1].details["sender"] == NORTH
    staging = xnode.layout.staging_dir(SOUTH)
    assert not staging.exists() or not any(staging.rglob("part-*"))


def test_a_signed_ping_names_the_sender(xnode: Node, transport: httpx.BaseTransport) -> None:
    client = xnode.partner_client(transport=transport)
    try:
        response = client.request(NORTH, SOUTH, "GET", "/ping")
    finally:
        client.close()
    assert response.status_code == 200, response.text
    assert response.json() == {"version": 1, "organisation": SOUTH, "sender": NORTH}
