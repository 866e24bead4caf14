"""Federation directories over HTTP: the edition this node publishes, and those an organisation trusts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import ActorDep, NodeDep
from civicshare.errors import NotFound

# Served without a token: an edition is signed by the operator, and anyone may check it.
public_router = APIRouter(tags=["directory"])
router = APIRouter(tags=["directory"])


@public_router.get("/directory.json", responses={200: {"content": {"application/json": {}}}})
async def published_directory(node: NodeDep) -> Response:
    """The latest signed edition of the federation directory this node operates; needs no token."""
    data = await run_in_threadpool(node.directory.published)
    if data is None:
        raise NotFound("This node does not publish a federation directory.")
    return Response(data, media_type="application/json", headers={"Cache-Control": "no-cache"})


@router.get("/directories")
def directories(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """The federation directories the caller's organisation trusts, and how their last refresh went."""
    return {"directories": [d.to_json() for d in node.trusted_directories(actor)]}


@router.get("/directories/{name}")
def directory(name: str, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """One trusted directory: its pinned operator key, its current edition's members and revocations."""
    trusted, edition = node.trusted_directory(actor, name)
    return {**trusted.to_json(), "edition": edition.summary()}
