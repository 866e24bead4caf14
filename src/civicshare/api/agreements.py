"""The register of data sharing agreements over HTTP, and their lifecycle: propose, sign, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from civicshare.access import Actor
from civicshare.agreements.model import MAX_AGREEMENT_BYTES
from civicshare.agreements.parse import JSON, YAML
from civicshare.agreements.register import AgreementRecord
from civicshare.api.auth import ActorDep, NodeDep
from civicshare.api.bodies import read_limited
from civicshare.node import Node

router = APIRouter(tags=["agreements"])

_AGREEMENT_BODY = {"requestBody": {
    "required": True,
    "description": "An agreement file, as `civicshare agreement template` writes it (YAML) or as JSON.",
    "content": {"application/yaml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}}}


@router.get("/agreements")
def agreements(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """The register: every version of every agreement, with warnings for reviews due within 30 days."""
    return {"agreements": [r.to_json(with_body=False) for r in node.agreements(actor)]}


@router.get("/agreements.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "The register as CSV."}})
def agreements_csv(actor: ActorDep, node: NodeDep) -> Response:
    """The register as CSV (one row per version), for the ICO or an auditor."""
    return Response(node.agreements_csv(actor), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="agreements-{actor.org_id}.csv"'})


@router.get("/agreements/{agreement_id}")
def agreement(
    agreement_id: str, actor: ActorDep, node: NodeDep,
    version: Annotated[int | None, Query(ge=1, description="Which version; the newest if left out.")] = None,
) -> dict[str, Any]:
    """One agreement, with every field of the agreement itself under ``agreement``."""
    return node.agreement(actor, agreement_id, version).to_json()


@router.post("/agreements", status_code=201, openapi_extra=_AGREEMENT_BODY)
async def create_agreement(request: Request, actor: ActorDep, node: NodeDep) -> JSONResponse:
    """Check an agreement (every problem at once, with field paths and lines) and register it as a draft."""
    data = await read_limited(request, MAX_AGREEMENT_BYTES, "An agreement")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = JSON if content_type.endswith("json") else YAML if "yaml" in content_type else None
    record = await run_in_threadpool(node.create_agreement, actor, data, fmt=fmt)
    return JSONResponse(record.to_json(), status_code=201)


# The lifecycle -----------------------------------------------------------------------------------

VersionQuery = Annotated[int | None, Query(ge=1, description="Which version; the newest if left out.")]


class Revocation(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="Why, in one line; every party sees it.")


def _with_notices(node: Node, actor: Actor, record: AgreementRecord) -> dict[str, Any]:
    notices = node.agreement_notices(actor, record.id)
    return {**record.to_json(), "notices": [n.to_json() for n in notices]}


@router.post("/agreements/{agreement_id}/propose")
def propose_agreement(agreement_id: str, actor: ActorDep, node: NodeDep,
                      version: VersionQuery = None) -> dict[str, Any]:
    """Send a draft to every other party (draft -> proposed); the notices go out in the background."""
    record = node.propose_agreement(actor, agreement_id, version)
    return _with_notices(node, actor, record)


@router.post("/agreements/{agreement_id}/sign")
def sign_agreement(agreement_id: str, actor: ActorDep, node: NodeDep,
                   version: VersionQuery = None) -> dict[str, Any]:
    """Sign the agreement's hash with the organisation's key: only a data protection officer's token may."""
    record = node.sign_agreement(actor, agreement_id, version)
    return _with_notices(node, actor, record)


@router.post("/agreements/{agreement_id}/revoke")
def revoke_agreement(agreement_id: str, revocation: Revocation, actor: ActorDep, node: NodeDep,
                     version: VersionQuery = None) -> dict[str, Any]:
    """End the agreement (the version in force, unless ``version``) for every party, with the reason."""
    record = node.revoke_agreement(actor, agreement_id, revocation.reason, version)
    return _with_notices(node, actor, record)
