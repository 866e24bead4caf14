"""The sender's ledger and the recipient's inbox over HTTP (what ``transfers list|show`` and ``inbox`` print).

Sharing itself is ``POST /v1/holdings/{id}/share``; delivery runs in ``serve``. These routes only read,
so a web page or a script can follow a transfer until its receipt is verified, and later its deletion.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from civicshare.api.auth import ActorDep, NodeDep

router = APIRouter(tags=["transfers"])


@router.get("/transfers")
def transfers(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """Every transfer the caller's organisation sent: state, bytes, attempts, last error, deletion at recipient."""
    now = node.clock()
    return {"transfers": [t.to_json(now=now) for t in node.transfers(actor)]}


@router.get("/transfers/{transfer_id}")
def transfer(transfer_id: str, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """One transfer with its manifest summary and, once delivered, the verified receipt."""
    return node.transfer(actor, transfer_id).to_json(detail=True, now=node.clock())


@router.get("/inbox")
def inbox(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """Transfers that arrived, or are arriving, for the caller's organisation, with their retention."""
    return {"inbox": [i.to_json() for i in node.inbox(actor)]}
