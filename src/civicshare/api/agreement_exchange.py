"""Node-to-node routes of the agreement lifecycle (docs/protocol.md): proposals, signatures, revocations.

Each reads the body within a hard limit and passes the node's gate (RFC 9421 signature, trust,
nonce) before anything looks at it; the core checks the signed document, stores it (idempotently)
and audits the outcome, refusals included, in a worker thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from civicshare.agreements.documents import MAX_DOCUMENT_BYTES
from civicshare.api.auth import NodeDep
from civicshare.api.gate import read_signed

router = APIRouter(tags=["exchange"])


def _body(what: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": f"The signed {what}.",
                            "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.post("/orgs/{org_id}/agreements", openapi_extra=_body("agreement-proposal"))
async def receive_proposal(org_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """A party proposes an agreement: kept as proposed (the same proposal again changes nothing)."""
    body, signed = await read_signed(node, request, org_id, MAX_DOCUMENT_BYTES, "An agreement proposal")
    return await run_in_threadpool(node.agreement_lifecycle.receive_proposal, org_id, signed.sender, body)


@router.post("/orgs/{org_id}/agreements/{agreement_id}/signatures", openapi_extra=_body("agreement-signature"))
async def receive_signature(org_id: str, agreement_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """A party's signature over the hash of a version held here."""
    body, signed = await read_signed(node, request, org_id, MAX_DOCUMENT_BYTES, "An agreement signature")
    return await run_in_threadpool(node.agreement_lifecycle.receive_signature, org_id, signed.sender,
                                   agreement_id, body)


@router.post("/orgs/{org_id}/agreements/{agreement_id}/revocations", openapi_extra=_body("agreement-revocation"))
async def receive_revocation(org_id: str, agreement_id: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """A party revoked a version: it ends here too."""
    body, signed = await read_signed(node, request, org_id, MAX_DOCUMENT_BYTES, "An agreement revocation")
    return await run_in_threadpool(node.agreement_lifecycle.receive_revocation, org_id, signed.sender,
                                   agreement_id, body)
