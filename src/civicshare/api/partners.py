"""The organisation's card and its pinned partners over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import ActorDep, NodeDep
from civicshare.api.bodies import read_limited
from civicshare.exchange.card import MAX_CARD_BYTES

router = APIRouter(tags=["partners"])

_CARD_BODY = {"requestBody": {"required": True, "description": "A signed card, as `civicshare card` writes it.",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.get("/card")
def card(actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """The caller's organisation's signed card, valid for a year: what partners pin."""
    return node.card(actor)


@router.get("/partners")
def partners(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """The partners the caller's organisation has pinned."""
    return {"partners": [p.to_json() for p in node.partners(actor)]}


@router.get("/partners/{org}")
def partner(org: str, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """One pinned partner, with the signed card it was pinned from."""
    return node.partner(actor, org).to_json(with_card=True)


async def _card_body(request: Request) -> bytes:
    """The raw body, so the core parses the card strictly; refused once it outgrows any card."""
    return await read_limited(request, MAX_CARD_BYTES, "A card")


@router.post("/partners", status_code=201, openapi_extra=_CARD_BODY)
async def add_partner(
    request: Request, actor: ActorDep, node: NodeDep,
    replace: Annotated[bool, Query(description="Accept a new signing key for a partner already pinned.")] = False,
) -> JSONResponse:
    """Verify a partner's card and pin it (administrators only). A changed signing key needs ``replace=true``."""
    data = await _card_body(request)
    pinned = await run_in_threadpool(node.add_partner, actor, data, replace=replace)
    return JSONResponse(pinned.to_json(), status_code=201)
