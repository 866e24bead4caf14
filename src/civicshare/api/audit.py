"""The audit log over HTTP: entries, signed checkpoints, proofs and verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from civicshare.api.auth import ActorDep, NodeDep

router = APIRouter(tags=["audit"])


@router.get("/audit/entries")
def entries(
    actor: ActorDep, node: NodeDep,
    obj: Annotated[str | None, Query(alias="object", description="Only events about this id.")] = None,
    by: Annotated[str | None, Query(alias="actor", description="Only events by this person or process.")] = None,
    since: Annotated[datetime | None, Query(description="Only events at or after this time (ISO 8601).")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> dict[str, list[dict[str, Any]]]:
    """Who touched what, when, oldest first."""
    found = node.audit_entries(actor, obj=obj, by=by, since=since, limit=limit)
    return {"entries": [e.to_json() for e in found]}


@router.get("/audit/checkpoints")
def checkpoints(actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """Every checkpoint signed so far, and the key to check them by."""
    return {"verifier_key": node.audit_verifier_key(actor),
            "checkpoints": [c.to_json() for c in node.audit_checkpoints(actor)]}


@router.post("/audit/checkpoints")
def sign_checkpoint(actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """Sign a checkpoint of the log as it stands (returns the existing one if nothing was added since)."""
    return {**node.audit_checkpoint(actor).to_json(), "verifier_key": node.audit_verifier_key(actor)}


@router.get("/audit/proofs/inclusion")
def inclusion(actor: ActorDep, node: NodeDep, index: Annotated[int, Query(ge=0)],
              size: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries (default: all)."""
    return node.audit_inclusion(actor, index, size)


@router.get("/audit/proofs/consistency")
def consistency(actor: ActorDep, node: NodeDep, old: Annotated[int, Query(alias="from", ge=1)],
                new: Annotated[int | None, Query(alias="to", ge=1)] = None) -> dict[str, Any]:
    """An RFC 9162 consistency proof that the tree of ``to`` entries extends the one of ``from``."""
    return node.audit_consistency(actor, old, new)


@router.post("/audit/verify")
def verify(actor: ActorDep, node: NodeDep,
           saved: Annotated[list[str] | None, Body(embed=True, alias="checkpoints",
                                                   description="Signed checkpoints saved earlier.")] = None,
           witnesses: Annotated[bool, Body(embed=True, description="Also check partners' checkpoints.")] = False,
           ) -> dict[str, Any]:
    """Recompute the log and check every checkpoint; a log that does not verify answers 500 audit_tampered.

    With ``witnesses``, every partner is asked for the checkpoints of this log it kept; the answer's
    ``witnesses`` says per partner how many matched or why it could not be asked.
    """
    return node.audit_verify(actor, saved or [], witnesses=witnesses).to_json()
