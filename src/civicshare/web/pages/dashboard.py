"""The dashboard: holdings, transfers in flight, recent deliveries and refusals, agreements needing review,
and a chart of transfers per day. Each panel shows only if the signed-in role may see what it lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from civicshare.access import Actor, Permission
from civicshare.agreements.register import ACTIVE, DRAFT, PROPOSED, SIGNED
from civicshare.exchange.transfers import DELIVERED, FAILED, QUEUED, RECEIVING, REFUSED, SENDING
from civicshare.holdings.store import DATASET
from civicshare.node import Node
from civicshare.web.charts import transfers_chart
from civicshare.web.deps import NodeDep, SessionDep
from civicshare.web.templating import render

router = APIRouter()

RECENT = 8  # rows in "recent deliveries and refusals"


@dataclass(frozen=True)
class Activity:
    """One finished transfer, either way, as the dashboard lists it."""

    at: datetime
    direction: str  # "Sent to" or "Received from"
    partner: str
    name: str
    state: str
    colour: str
    reason: str | None
    href: str | None



def _ended(moment: datetime | None, fallback: datetime) -> datetime:
    return moment if moment is not None else fallback


def dashboard_data(node: Node, actor: Actor) -> dict[str, Any]:
    """Everything the dashboard shows, read from the core as ``actor`` (blocking: run in a thread)."""
    now = node.clock()
    data: dict[str, Any] = {"now": now, "holdings": None, "in_flight": None, "recent": [], "reviews": None,
                            "chart": None, "may_share": actor.may(Permission.TRANSFERS_SHARE),
                            "may_import": actor.may(Permission.HOLDINGS_IMPORT)}
    if not actor.may(Permission.HOLDINGS_READ):
        return data
    held = [h for h in node.list_holdings(actor) if not h.shredded]
    data["holdings"] = {"total": len(held), "datasets": sum(1 for h in held if h.kind == DATASET),
                        "documents": sum(1 for h in held if h.kind != DATASET),
                        "rows": sum(h.rows or 0 for h in held if h.kind == DATASET)}
    inbound = node.inbox(actor)
    sent = node.transfers(actor) if actor.may(Permission.TRANSFERS_READ) else None
    recent: list[Activity] = []
    in_flight: list[dict[str, Any]] = []
    for entry in inbound:
        if entry.state == RECEIVING:
            in_flight.append({"direction": "Arriving from", "partner": entry.sender,
                              "name": entry.manifest.holding.name, "state": "Receiving", "href": "/web/inbox",
                              "since": entry.created_at})
        elif entry.state in (DELIVERED, REFUSED):
            recent.append(Activity(_ended(entry.completed_at, entry.created_at), "Received from", entry.sender,
                                   entry.manifest.holding.name, "Received" if entry.state == DELIVERED else "Refused",
                                   "green" if entry.state == DELIVERED else "red", entry.refused_reason,
                                   f"/web/holdings/{entry.holding_id}" if entry.holding_id else "/web/inbox"))
    for transfer in sent or []:
        name = transfer.manifest.holding.name
        href = f"/web/transfers/{transfer.id}"
        if transfer.state in (QUEUED, SENDING):
            in_flight.append({"direction": "Sending to", "partner": transfer.recipient, "name": name,
                              "state": "Queued" if transfer.state == QUEUED else "Sending", "href": href,
                              "since": transfer.created_at})
        elif transfer.state in (DELIVERED, FAILED):
            delivered = transfer.state == DELIVERED
            recent.append(Activity(_ended(transfer.delivered_at, transfer.updated_at), "Sent to", transfer.recipient,
                                   name, "Delivered" if delivered else "Refused or failed",
                                   "green" if delivered else "red",
                                   None if delivered else (transfer.failed_reason or transfer.last_error), href))
    recent.sort(key=lambda a: a.at, reverse=True)
    data["recent"] = recent[:RECENT]
    data["in_flight"] = sorted(in_flight, key=lambda t: t["since"], reverse=True)
    data["sent_visible"] = sent is not None
    data["chart"] = transfers_chart(now.date(), None if sent is None else [t.created_at for t in sent],
                                    [e.created_at for e in inbound])
    if actor.may(Permission.AGREEMENTS_READ):
        reviews = []
        for record in node.agreements(actor):
            if record.state not in (DRAFT, PROPOSED, SIGNED, ACTIVE):
                continue  # revoked, superseded and expired versions need no review
            waiting_on_us = record.stored_state == PROPOSED and actor.org_id in record.waiting_for
            if record.warnings or waiting_on_us:
                notes = list(record.warnings) + (["waiting for your organisation's signature"] if waiting_on_us else [])
                reviews.append({"id": record.id, "version": record.version, "purpose": record.agreement.purpose,
                                "state": record.state, "notes": notes})
        data["reviews"] = reviews
    return data


@router.get("/")
async def dashboard(request: Request, session: SessionDep, node: NodeDep) -> Response:
    data = await run_in_threadpool(dashboard_data, node, session.actor)
    return render(request, "dashboard.html", active_nav="dashboard", **data)
