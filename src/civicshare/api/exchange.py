"""Node-to-node transfer routes (docs/protocol.md): sealing key, manifest, status, parts and commit.

Each route reads the raw body with a hard limit, then passes the node's gate (RFC 9421 signature,
trust, nonce) before anything looks at the body; the core does the rest in a worker thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import NodeDep
from civicshare.api.gate import read_signed
from civicshare.exchange.manifest import MAX_MANIFEST_BYTES, MAX_PART_SIZE

router = APIRouter(tags=["exchange"])

_BINARY = {"requestBody": {"required": True, "description": "The bytes of the part (ciphertext).",
                           "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                               "format": "binary"}}}}}
_MANIFEST = {"requestBody": {"required": True, "description": "The signed manifest.",
                             "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.put("/orgs/{org_id}/transfers/{transfer_id}", openapi_extra=_MANIFEST)
async def put_manifest(org_id: str, transfer_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """Begin (or look again at) a transfer: the signed manifest in, the transfer status out."""
    body, signed = await read_signed(node, request, org_id, MAX_MANIFEST_BYTES, "A manifest")
    return await run_in_threadpool(node.exchange.inbox.put_manifest, org_id, signed.sender, transfer_id, body)


@router.get("/orgs/{org_id}/transfers/{transfer_id}")
async def transfer_status(org_id: str, transfer_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """The transfer status: its state, the parts received, and the receipt once delivered."""
    body, signed = await read_signed(node, request, org_id, 0, "This request's body")
    return await run_in_threadpool(node.exchange.inbox.status, org_id, signed.sender, transfer_id)


@router.post("/orgs/{org_id}/transfers/{transfer_id}/sealing-key")
async def sealing_key(org_id: str, transfer_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """Before sealing a document: the data key this organisation made for it, in a signed sealing key."""
    body, signed = await read_signed(node, request, org_id, 0, "This request's body")
    return await run_in_threadpool(node.exchange.inbox.sealing.issue, org_id, signed.sender, transfer_id)


@router.put("/orgs/{org_id}/transfers/{transfer_id}/parts/{n}", openapi_extra=_BINARY)
async def put_part(org_id: str, transfer_id: str, n: int, request: Request, node: NodeDep) -> dict[str, Any]:
    """One part of the ciphertext, checked against the manifest's hash for it and staged."""
    body, signed = await read_signed(node, request, org_id, MAX_PART_SIZE, "A part")
    return await run_in_threadpool(node.exchange.inbox.part_arrived, org_id, signed.sender, transfer_id, n, body,
                                   body_sha256=signed.body_sha256)


@router.post("/orgs/{org_id}/transfers/{transfer_id}/commit")
async def commit(org_id: str, transfer_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """Open the transfer into a new holding and answer the signed receipt (again, if already done)."""
    body, signed = await read_signed(node, request, org_id, 0, "This request's body")
    return await run_in_threadpool(node.exchange.inbox.commit, org_id, signed.sender, transfer_id)
