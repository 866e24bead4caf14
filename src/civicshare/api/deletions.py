"""The node-to-node route for deletion certificates (docs/protocol.md).

A recipient that destroyed a holding it received sends the provider a signed deletion certificate
here. The request passes the node's gate first (RFC 9421 signature, trust, nonce); the core then
verifies the certificate against the transfer it names and keeps it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import NodeDep
from civicshare.api.gate import read_signed
from civicshare.exchange.deletion import MAX_CERTIFICATE_BYTES

router = APIRouter(tags=["exchange"])

_CERTIFICATE = {"requestBody": {"required": True, "description": "The signed deletion certificate.",
                                "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.post("/orgs/{org_id}/transfers/{transfer_id}/deletion", openapi_extra=_CERTIFICATE)
async def deletion_certificate(org_id: str, transfer_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """Verify and keep the recipient's certificate that it destroyed what this transfer brought it."""
    body, signed = await read_signed(node, request, org_id, MAX_CERTIFICATE_BYTES, "A deletion certificate")
    return await run_in_threadpool(node.retention.accept_certificate, org_id, signed.sender, transfer_id, body)
