"""The inbox: what partners sent this organisation, with the quality the sender stated, seen before the data is used.

Each arrival shows the sender's quality summary (score, rows with faults, completeness and validity of each
field) from its signed manifest, so a caseworker knows how far to trust a dataset before opening it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from civicshare.errors import NotFound
from civicshare.exchange.transfers import DELIVERED, RECEIVING, REFUSED, InboundTransfer
from civicshare.web.deps import NodeDep, SessionDep
from civicshare.web.templating import render

router = APIRouter()

STATE_WORDS = {RECEIVING: ("Arriving", "blue"), DELIVERED: ("Arrived", "green"), REFUSED: ("Refused", "red")}


def quality_band(score: float | None) -> tuple[str, str]:
    """Words and a tag colour for a quality score, so it can be read at a glance (not by colour alone)."""
    if score is None:
        return "Not stated", "grey"
    if score >= 95:
        return f"{score:g} – good", "green"
    if score >= 80:
        return f"{score:g} – check before use", "yellow"
    return f"{score:g} – poor", "red"


def _row(entry: InboundTransfer) -> dict[str, Any]:
    data = entry.to_json()
    state, colour = STATE_WORDS.get(entry.state, (entry.state.capitalize(), "grey"))
    band, band_colour = quality_band(data["quality_score"])
    return {"entry": entry, "data": data, "state": state, "state_colour": colour, "band": band,
            "band_colour": band_colour}


@router.get("/inbox")
def inbox(request: Request, session: SessionDep, node: NodeDep) -> Response:
    rows = [_row(e) for e in reversed(node.inbox(session.actor))]
    return render(request, "inbox/list.html", rows=rows, active_nav="inbox")


@router.get("/inbox/{transfer_id}")
def arrival(request: Request, transfer_id: str, session: SessionDep, node: NodeDep) -> Response:
    # The inbox is scoped to the signed-in organisation, so another organisation's transfer is not found.
    entry = next((e for e in node.inbox(session.actor) if e.transfer_id == transfer_id), None)
    if entry is None:
        raise NotFound(f"No transfer {transfer_id!r} arrived for {session.org_id}.")
    row = _row(entry)
    quality = row["data"]["quality"]
    fields = []
    if quality is not None:
        # In the order of the columns received (the signed summary's keys are sorted).
        order = {name: n for n, name in enumerate(entry.manifest.holding.column_names)}
        for name, figures in sorted(quality["fields"].items(), key=lambda item: order.get(item[0], len(order))):
            validity = figures["validity"]
            fields.append((name, f"{figures['completeness'] * 100:.1f}%",
                           "Not checked" if validity is None else f"{validity * 100:.1f}%"))
    return render(request, "inbox/detail.html", active_nav="inbox", fields=fields, quality=quality,
                  agreement=entry.agreement_id, **row)
