"""The key register and KEK rotation over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from civicshare.api.auth import ActorDep, NodeDep

router = APIRouter(tags=["keys"])


@router.get("/keys")
def key_register(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """Every key of the caller's organisation: whose, what for, which algorithm, where it is held."""
    return {"keys": [k.to_json() for k in node.key_register(actor)]}


@router.post("/keys/rotate-kek")
def rotate_kek(actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """Replace the organisation's key-encryption key and re-wrap every data key under the new one."""
    kek, rewrapped = node.rotate_kek(actor)
    return {"kek": kek, "rewrapped": rewrapped}
