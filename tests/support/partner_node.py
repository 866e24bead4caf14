"""One node hosting partner organisations that pin each other, with its own API as their transport.

The node has a public URL, so each organisation's card carries an endpoint; requests between the
organisations go through the real application (Starlette's test transport), gate and routes included,
the way they go between two real nodes. The exchange, agreement and retention tests all build on this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from civicshare.access import Actor
from civicshare.api.app import create_app
from civicshare.crypto import KdfParams
from civicshare.node import Node
from tests.conftest import PASSPHRASE

NORTH, SOUTH, EAST = "north-wold", "south-fen", "east-marsh"
URL = "http://civicshare.test"
NAMES = {NORTH: "North Wold District Council", SOUTH: "South Fen Borough Council",
         EAST: "East Marsh District Council"}


def pin(node: Node, org: str, partner: str) -> None:
    node.add_partner(Actor.operator(org), json.dumps(node.card(Actor.operator(partner))))


def partner_node(home: Path, db_url: str | None, orgs: Sequence[str] = (NORTH, SOUTH), *,
                 clock: Callable[[], datetime] | None = None) -> Node:
    """A node at URL hosting ``orgs`` (the first made with the node), each pinning every other."""
    options = {"clock": clock} if clock is not None else {}
    node = Node.init(home, orgs[0], NAMES[orgs[0]], url=URL, db_url=db_url, passphrase=PASSPHRASE,
                     kdf=KdfParams.fast_for_tests(), **options)
    for org in orgs[1:]:
        node.add_organisation(org, NAMES[org], url=URL)
    for org in orgs:
        for partner in orgs:
            if org != partner:
                pin(node, org, partner)
    return node


def app_transport(node: Node) -> httpx.BaseTransport:
    """The node's own API as the partner client's transport."""
    client = TestClient(create_app(node), base_url=URL, raise_server_exceptions=False)
    return client._transport
