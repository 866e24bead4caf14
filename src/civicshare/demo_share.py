"""The sharing part of ``civicshare demo``: three councils on two nodes, agreements, a dataset and a document.

Node A is a shared-service centre hosting North Wold and South Fen; node B hosts East Marsh. Both run
``civicshare serve`` on loopback. North Wold agrees with East Marsh which fields of its residents
dataset East Marsh may receive, and with South Fen that it may receive plain-text documents
(demo_agreements.py). It then shares the dataset with East Marsh (across the network; only the agreed
fields travel) and a document with South Fen (on the same node, through the very same exchange path),
waits for each signed receipt to be verified, checks what arrived and the witnesses, shows shares
outside the agreements refused, and finally revokes East Marsh's agreement and sees its copy deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicshare.access import Actor, Role
from civicshare.demo_agreements import (
    AGREED_FIELDS,
    DPO,
    Party,
    make_agreement,
    records_manager,
    revoke_and_see_deletion,
    show_refusals,
)
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
    agreements: list[dict[str, Any]]
    refusals: list[str]
    checks: list[str]


def _admin(org: str) -> Actor:
    return Actor(org, "demo-admin", Role.ADMIN)


def _pin(node_from: Node, org: str, node_to: Node, partner: str) -> None:
    """``org`` (on ``node_from``) pins ``partner``'s card (issued on ``node_to``)."""
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


def _records(node: Node, actor: Actor, holding_id: str) -> list[dict[str, Any]]:
    """The holding's rows, exported as JSON Lines in memory."""
    with memory_file("export.jsonl") as (fd, out):
        node.export(actor, holding_id, out, "jsonl", overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return [json.loads(line) for line in fh]


def _check_minimised(node_a: Node, dataset_id: str, node_b: Node, copy_id: str) -> None:
    """East Marsh's copy holds exactly the agreed fields of every row, and nothing else."""
    ours = _records(node_a, records_manager(NORTH), dataset_id)
    theirs = _records(node_b, records_manager(EAST), copy_id)
    _check(all(list(row) == list(AGREED_FIELDS) for row in theirs), "East Marsh's copy has only the agreed fields")
    _check(theirs == [{k: row[k] for k in AGREED_FIELDS} for row in ours],
           "East Marsh's copy matches North Wold's rows on the agreed fields")
    withheld = {str(row["nhs_number"]) for row in ours[:50]} | {str(row["email"]) for row in ours[:50]}
    seen = {str(value) for row in theirs for value in row.values()}
    _check(not withheld & seen, "no NHS number or e-mail address reached East Marsh")


def run_share(node_a: Node, port_a: int, home_b: Path, port_b: int, passphrase: str, dataset_id: str,
              document_id: str, say: Callable[[str], None]) -> ShareResult:
    """Start both nodes, agree, share, wait for verified receipts, check, refuse, revoke and see the deletion."""
    node_b = Node.init(home_b, EAST, "East Marsh District Council", url=f"http://127.0.0.1:{port_b}",
                       passphrase=passphrase)
    with node_b, ExitStack() as servers:
        say(f"Node B at http://127.0.0.1:{port_b} hosts {EAST}; node A at http://127.0.0.1:{port_a} hosts "
            f"{NORTH} and {SOUTH} (a shared-service centre).")
        _pin(node_a, NORTH, node_b, EAST)
        _pin(node_b, EAST, node_a, NORTH)
        _pin(node_a, NORTH, node_a, SOUTH)
        _pin(node_a, SOUTH, node_a, NORTH)
        for node, org in ((node_a, NORTH), (node_a, SOUTH), (node_b, EAST)):
            node.add_user(org, DPO, Role.DPO)
        say("Each council pinned its partners' signed cards (signing key, age recipient, endpoint) and named "
            "its data protection officer.")
        servers.enter_context(serving(node_a.layout.home, port_a, passphrase))
        servers.enter_context(serving(home_b, port_b, passphrase))
        say("Started both nodes (civicshare serve), each with its delivery worker and retention sweep.")

        north, south = Party(NORTH, "North Wold", node_a), Party(SOUTH, "South Fen", node_a)
        east = Party(EAST, "East Marsh", node_b)
        say("")
        to_east_dsa = make_agreement(north, east, "Council tax: East Marsh bills residents who moved across the "
                                     "border.", say, dataset="residents", fields=AGREED_FIELDS)
        to_south_dsa = make_agreement(north, south, "Shared revenues and benefits service: guidance notes.", say,
                                      media_types=["text/plain"])

        say("")
        rm = records_manager(NORTH)
        to_east = node_a.exchange.share(rm, dataset_id, EAST, agreement=to_east_dsa.id)
        to_south = node_a.exchange.share(rm, document_id, SOUTH, agreement=to_south_dsa.id)
        say(f"North Wold sealed the dataset to East Marsh ({to_east.id}, under {to_east_dsa.id}: only the "
            f"{len(AGREED_FIELDS)} agreed fields) and the document to South Fen ({to_south.id}, under "
            f"{to_south_dsa.id}); both are in the outbox before anything is sent.")
        delivered = [_wait_delivered(node_a, rm, t.id) for t in (to_east, to_south)]

        say("")
        say("North Wold's transfers ledger:")
        for transfer in delivered:
            body = (transfer.receipt or {}).get("body", {})
            say(f"  {transfer.id}  to {transfer.recipient:<11} under {transfer.agreement}  {transfer.state:<9} "
                f"{transfer.size:>9,} bytes  attempts {transfer.attempts}  receipt: holding {body.get('holding')} "
                f"at {body.get('received')}, signed by {transfer.recipient}, verified")

        arrived_east = [i for i in node_b.exchange.inbound(records_manager(EAST)) if i.transfer_id == to_east.id]
        arrived_south = [i for i in node_a.exchange.inbound(records_manager(SOUTH)) if i.transfer_id == to_south.id]
        _check(len(arrived_east) == 1 and arrived_east[0].holding_id is not None,
               "the dataset is in East Marsh's inbox")
        _check(len(arrived_south) == 1 and arrived_south[0].holding_id is not None,
               "the document is in South Fen's inbox")
        east_holding, south_holding = arrived_east[0].holding_id, arrived_south[0].holding_id
        assert east_holding is not None and south_holding is not None
        say(f"East Marsh's inbox: {east_holding} from {NORTH}; South Fen's inbox: {south_holding} from {NORTH}.")

        _check_minimised(node_a, dataset_id, node_b, east_holding)
        exported = _sha256_export(node_a, rm, document_id, None)
        _check(exported == _sha256_export(node_a, records_manager(SOUTH), south_holding, None),
               "South Fen's copy of the document is byte-identical")
        fixity = node_a.holding(records_manager(SOUTH), south_holding).sha256 or ""
        _check(fixity == node_a.holding(rm, document_id).sha256 == exported,
               "both councils record the document's fixity, and it matches the copies")
        say("East Marsh's copy holds the agreed fields of every row and nothing else (no NHS number, date of birth, "
            "phone or e-mail); South Fen's document is byte-identical (fixity SHA-256 " + f"{fixity[:16]}... "
            "recorded on both sides). Each is stored under the recipient's own keys.")

        say("")
        refusals = show_refusals(node_a, NORTH, EAST, SOUTH, to_east_dsa.id, dataset_id, document_id, say)

        say("")
        for result in witnessing.exchange(node_a, NORTH):
            _check(result.error is None, f"checkpoint exchange with {result.partner}: {result.error}")
        report = node_a.audit_verify(_admin(NORTH), witnesses=True)
        witnesses = report.witnesses or []
        _check(all(w["error"] is None and w["checkpoints"] > 0 for w in witnesses),
               "every partner holds checkpoints of North Wold's log")
        say("North Wold's audit log verifies against the checkpoints its partners keep: "
            + ", ".join(f"{w['partner']} ({w['checkpoints']})" for w in witnesses) + ".")

        say("")
        deleted, after_revocation = revoke_and_see_deletion(north, east, to_east_dsa.id, to_east, east_holding, say)
        now = node_a.clock()
        rows = [t.to_json(now=now) for t in [deleted, delivered[1]]]
        agreements = [{"id": r.id, "version": r.version, "hash": r.hash, "provider": r.agreement.provider,
                       "recipients": list(r.agreement.recipients), "state": node_a.agreement(rm, r.id).state}
                      for r in (to_east_dsa, to_south_dsa)]
        _check([a["state"] for a in agreements] == ["revoked", "active"], "North Wold's register shows both")
    checks = ["agreements signed at both ends", "share across nodes", "share within a node", "receipts verified",
              "minimisation", "fixity recorded at both ends", "refusals outside an agreement", "witnesses",
              "deletion certificate verified"]
    return ShareResult(rows, agreements, [*refusals, after_revocation], checks)
