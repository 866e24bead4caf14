"""Enforcement tests: a node on the test's clock hosting three councils that pin each other.

Requests between them go through the node's own application (gate and routes included), so a share,
its delivery and every refusal run the way they run between two real nodes. ``bypass_manifest``
plays a sender that skips its own checks: it seals what it likes and signs the manifest with the
sender's real key, so only the recipient's own checks stand in the way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from civicshare.access import Actor
from civicshare.canonical import canonical_json
from civicshare.clock import new_id
from civicshare.exchange.manifest import AgreementRef, Manifest, sign_manifest
from civicshare.exchange.payload import SealedPayload, seal_holding
from civicshare.holdings.store import Holding
from civicshare.node import Node
from tests.agreements.support import Clock
from tests.conftest import actor, write_csv
from tests.exchange.transfer_support import EAST, NORTH, SOUTH
from tests.support.partner_node import app_transport, partner_node

# Synthetic people: every value of the columns no agreement allows is looked for in what was shared.
RESIDENTS = ("nhs_number,surname,postcode,date_of_birth\n"
             "9434765919,Abbott,NW1 1AA,1961-02-03\n"
             "9434765870,Brown,NW2 2BB,1972-04-05\n"
             "9434765828,Čapek,NW3 3CC,1983-06-07\n")
AGREED = ["surname", "postcode"]
WITHHELD = ["nhs_number", "date_of_birth", "9434765919", "9434765870", "9434765828", "1961-02-03", "1972-04-05",
            "1983-06-07"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cnode(tmp_path: Path, db_url: str | None, clock: Clock) -> Iterator[Node]:
    """north-wold, south-fen and east-marsh on one node at URL, each pinning the others, on ``clock``."""
    n = partner_node(tmp_path / "home", db_url, (NORTH, SOUTH, EAST), clock=clock)
    yield n
    n.close()


@pytest.fixture
def ctransport(cnode: Node) -> httpx.BaseTransport:
    return app_transport(cnode)


def residents(node: Node, tmp_path: Path, *, org: str = NORTH, name: str = "Residents",
              classification: str = "OFFICIAL") -> Holding:
    source = write_csv(tmp_path / f"{name}-{org}.csv", RESIDENTS)
    return node.import_dataset(actor(org), source, name, classification=classification)


def letter(node: Node, *, media_type: str = "application/pdf", classification: str = "OFFICIAL") -> Holding:
    return node.import_document(actor(NORTH), io.BytesIO(b"%PDF-1.7 a care plan"), "plan.pdf",
                                media_type=media_type, classification=classification)


def entries(node: Node, org: str, action: str) -> list[Any]:
    return [e for e in node.audit.entries(org) if e.action == action]


def deliver(node: Node, transport: httpx.BaseTransport) -> dict[str, str]:
    return node.exchange.worker(transport=transport).run_once()


def bypass_manifest(node: Node, holding_id: str, ref: AgreementRef, dest: Path, *, to: str = SOUTH,
                    columns: list[str] | None = None, **holding_changes: Any) -> tuple[Manifest, dict[str, Any],
                                                                                      SealedPayload]:
    """A manifest as a sender that skips its own agreement checks would make, signed with its real key.

    The holding is sealed as asked (every column unless ``columns``); ``holding_changes`` alter what
    the manifest says of it (such as its classification).
    """
    _key, recipient = node.keys.age_recipient(to)
    sealed = seal_holding(node, Actor.operator(NORTH), holding_id, recipient, dest, columns=columns)
    info = sealed.holding
    if holding_changes:
        info = type(info)(**{**info.__dict__, **holding_changes})
    manifest = Manifest(new_id("t", node.rng), NORTH, to, node.clock().replace(microsecond=0), ref, info,
                        sealed.plaintext, sealed.ciphertext, recipient, sealed.part_size, sealed.part_hashes)
    key_id, _public = node.keys.signing_key(NORTH)
    store = node.keystore(NORTH)
    return manifest, sign_manifest(manifest, key_id, lambda data: store.sign(key_id, data)), sealed


def put_manifest(node: Node, transport: httpx.BaseTransport, document: dict[str, Any],
                 to: str = SOUTH) -> httpx.Response:
    """PUT a signed manifest from north-wold to ``to`` through the gate, as the delivery worker does."""
    client = node.partner_client(transport=transport)
    try:
        transfer = document["body"]["transfer"]
        return client.request(NORTH, to, "PUT", f"/transfers/{transfer}", content=canonical_json(document),
                              content_type="application/json")
    finally:
        client.close()
