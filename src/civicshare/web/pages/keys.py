"""The key register: every key of the organisation, whose, what for, which algorithm, where it is held."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import Response

from civicshare.web.deps import NodeDep, SessionDep
from civicshare.web.templating import render

router = APIRouter()

STATE_COLOURS = {"active": "green", "retired": "grey", "destroyed": "red"}
# An organisation with many holdings has a data key for each; the page lists this many at most.
MAX_ROWS = 500


@router.get("/keys")
def key_register(request: Request, session: SessionDep, node: NodeDep, show: str = "active") -> Response:
    keys = node.key_register(session.actor)
    counts = Counter(k.state for k in keys)
    shown = keys if show == "all" else [k for k in keys if k.state == "active"]
    # Organisation keys first (signing, receiving, KEK), then data keys, newest first within each.
    shown = sorted(shown, key=lambda k: (k.purpose == "data", -k.created_at.timestamp()))
    return render(request, "keys/register.html", keys=shown[:MAX_ROWS], shown_count=len(shown), counts=counts,
                  total=len(keys), show_all=show == "all", max_rows=MAX_ROWS, state_colours=STATE_COLOURS,
                  active_nav="keys")
