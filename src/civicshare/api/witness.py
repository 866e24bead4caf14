"""Node-to-node routes for witnessing: swapping audit checkpoints, and handing back the ones kept.

Both are signed requests from a partner node (RFC 9421), checked by the node's gate before anything
else; the answer only ever concerns the authenticated caller's own log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import NodeDep
from civicshare.api.gate import read_signed
from civicshare.audit.witness import MAX_NOTE_BYTES
from civicshare.exchange import witnessing

router = APIRouter(tags=["exchange"])


@router.post("/orgs/{org_id}/checkpoints")
async def swap_checkpoints(org_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """Keep the calling partner's signed checkpoint; answer with a fresh one of this organisation's log."""
    body, signed = await read_signed(node, request, org_id, MAX_NOTE_BYTES + 1024, "A checkpoint exchange")
    note = witnessing.parse_checkpoint_request(body)
    return await run_in_threadpool(witnessing.answer_exchange, node, org_id, signed.sender, note)


@router.get("/orgs/{org_id}/witnessed")
async def witnessed(org_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """The checkpoints of the calling partner's own log that this organisation kept, newest first."""
    body, signed = await read_signed(node, request, org_id, 0, "This request's body")
    return await run_in_threadpool(witnessing.answer_witnessed, node, org_id, signed.sender)
