"""The sharing part of ``civicshare demo``: three councils on two nodes, a dataset and a document.

Node A is a shared-service centre hosting North Wold and South Fen; node B hosts East Marsh. Both run
``civicshare serve`` on loopback. North Wold shares its residents dataset with East Marsh (across the
network) and a document with South Fen (on the same node, through the very same exchange path), and
the demo waits for each signed receipt to be verified, then checks what arrived and the witnesses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicshare.access import Actor, Role
from civicshare.demo_nodes import DemoFailed, serving
from civicshare.demo_nodes import check as _check
from civicshare.exchange import witnessing
from civicshare.exchange.transfers import Transfer
from civicshare.memfile import memory_file
from civicshare.node import Node

NORTH, SOUTH, EAST = "north-wold", "south-fen", "east-marsh"
DELIVERY_SECONDS = 90.0


@dataclass
class ShareResult:
    transfers: list[dict[str, Any]]
    checks: list[str]


def _admin(org: str) -> Actor:
    return Actor(org, "demo-admin", Role.ADMIN)


def _pin(node_from: Node, org: str, node_to: Node, partner: str) -> None:
    """``org`` (on ``node_from``) pins ``partner``'s card (issued on ``node_to``)."""
    import json

    card = node_to.card(_admin(partner))
    node_from.add_partner(_admin(org), json.dumps(card))


def _wait_delivered(node: Node, actor: Actor, transfer_id: str) -> Transfer:
    transfer = node.exchange.wait(actor, transfer_id, timeout=DELIVERY_SECONDS, poll=0.2)
    if transfer.state == "failed":
        raise DemoFailed(f"Transfer {transfer_id} failed: {transfer.failed_reason}")
    return transfer


def _sha256_export(node: Node, actor: Actor, holding_id: str, fmt: str | None) -> str:
    with memory_file("export") as (fd, out):
        node.export(actor, holding_id, out, fmt, overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        digest = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def run_share(node_a: Node, port_a: int, home_b: Path, port_b: int, passphrase: str, dataset_id: str,
              document_id: str, say: Callable[[str], None]) -> ShareResult:
    """Start both nodes, share, wait for verified receipts, and check both copies and the witnesses."""
    node_b = Node.init(home_b, EAST, "East Marsh District Council", url=f"http://127.0.0.1:{port_b}",
                       passphrase=passphrase)
    with node_b, ExitStack() as servers:
        say(f"Node B at http://127.0.0.1:{port_b} hosts {EAST}; node A at http://127.0.0.1:{port_a} hosts "
            f"{NORTH} and {SOUTH} (a shared-service centre).")
        _pin(node_a, NORTH, node_b, EAST)
        _pin(node_b, EAST, node_a, NORTH)
        _pin(node_a, NORTH, node_a, SOUTH)
        _pin(node_a, SOUTH, node_a, NORTH)
        say("Each council pinned its partners' signed cards (signing key, age recipient, endpoint).")
        servers.enter_context(serving(node_a.layout.home, port_a, passphrase))
        servers.enter_context(serving(home_b, port_b, passphrase))
        say("Started both nodes (civicshare serve), each with its delivery worker.")

        north = Actor(NORTH, "demo-records-manager", Role.RECORDS_MANAGER)
        to_east = node_a.exchange.share(north, dataset_id, EAST)
        to_south = node_a.exchange.share(north, document_id, SOUTH)
        say(f"North Wold sealed the dataset to East Marsh ({to_east.id}) and the document to South Fen "
            f"({to_south.id}); both are in the outbox before anything is sent.")
        delivered = [_wait_delivered(node_a, north, t.id) for t in (to_east, to_south)]

        say("")
        say("North Wold's transfers ledger:")
        rows = []
        for transfer in delivered:
            receipt = transfer.receipt or {}
            body = receipt.get("body", {})
            rows.append(transfer.to_json())
            say(f"  {transfer.id}  to {transfer.recipient:<11} {transfer.state:<9} {transfer.size:>9,} bytes  "
                f"attempts {transfer.attempts}  receipt: holding {body.get('holding')} at {body.get('received')}, "
                f"signed by {transfer.recipient}, verified")

        east = Actor(EAST, "demo-records-manager", Role.RECORDS_MANAGER)
        south = Actor(SOUTH, "demo-records-manager", Role.RECORDS_MANAGER)
        arrived_east = [i for i in node_b.exchange.inbound(east) if i.transfer_id == to_east.id]
        arrived_south = [i for i in node_a.exchange.inbound(south) if i.transfer_id == to_south.id]
        _check(len(arrived_east) == 1 and arrived_east[0].holding_id is not None,
               "the dataset is in East Marsh's inbox")
        _check(len(arrived_south) == 1 and arrived_south[0].holding_id is not None,
               "the document is in South Fen's inbox")
        east_holding, south_holding = arrived_east[0].holding_id, arrived_south[0].holding_id
        assert east_holding is not None and south_holding is not None
        say(f"East Marsh's inbox: {east_holding} from {NORTH}; South Fen's inbox: {south_holding} from {NORTH}.")

        _check(_sha256_export(node_a, north, dataset_id, "csv") == _sha256_export(node_b, east, east_holding, "csv"),
               "East Marsh's copy of the dataset is identical")
        _check(_sha256_export(node_a, north, document_id, None) == _sha256_export(node_a, south, south_holding, None),
               "South Fen's copy of the document is byte-identical")
        say("Both copies export identical to North Wold's originals; each is stored under the recipient's own keys.")

        for result in witnessing.exchange(node_a, NORTH):
            _check(result.error is None, f"checkpoint exchange with {result.partner}: {result.error}")
        report = node_a.audit_verify(_admin(NORTH), witnesses=True)
        witnesses = report.witnesses or []
        _check(all(w["error"] is None and w["checkpoints"] > 0 for w in witnesses),
               "every partner holds checkpoints of North Wold's log")
        say("North Wold's audit log verifies against the checkpoints its partners keep: "
            + ", ".join(f"{w['partner']} ({w['checkpoints']})" for w in witnesses) + ".")
    return ShareResult(rows, ["share across nodes", "share within a node", "receipts verified", "witnesses"])
