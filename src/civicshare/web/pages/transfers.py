"""The transfers ledger: every holding this organisation sent, each transfer's progress, receipt and deletion.

A transfer's page shows its progress until "Delivered — receipt verified". Without JavaScript a refresh link
brings the latest state; with it, static/transfer-status.js polls ``/web/transfers/{id}/status.json`` and
updates the page in place (a live region, so screen readers hear the change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from civicshare.exchange.transfers import DELIVERED, EXPORTED, FAILED, QUEUED, SENDING, Transfer
from civicshare.web.deps import NodeDep, SessionDep
from civicshare.web.templating import WEB, render, size_in_words

router = APIRouter()

FINISHED = (DELIVERED, FAILED)
# The GOV.UK tag colour of each state.
STATE_COLOURS = {QUEUED: "grey", SENDING: "blue", DELIVERED: "green", FAILED: "red", EXPORTED: "yellow"}
DELETION_COLOURS = {"verified": "green", "due": "grey", "overdue": "red", "deleted": "green"}


@dataclass(frozen=True)
class Status:
    """A transfer's progress in words, for its page and its JSON."""

    state: str
    label: str
    words: str
    bytes_sent: int
    size: int
    finished: bool
    receipt_verified: bool

    @property
    def percent(self) -> int:
        if self.size <= 0:
            return 100 if self.state == DELIVERED else 0
        return min(100, self.bytes_sent * 100 // self.size)

    @property
    def colour(self) -> str:
        return STATE_COLOURS.get(self.state, "grey")

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "label": self.label, "words": self.words, "bytes_sent": self.bytes_sent,
                "size": self.size, "percent": self.percent, "finished": self.finished,
                "receipt_verified": self.receipt_verified, "colour": self.colour}


def status_of(transfer: Transfer) -> Status:
    sent, size = transfer.bytes_sent, transfer.size
    receipt = transfer.receipt_text is not None
    if transfer.state == DELIVERED:
        label = "Delivered — receipt verified" if receipt else "Delivered"
        words = (f"{transfer.recipient} signed a receipt for exactly what was sent, and it verified."
                 if receipt else f"{transfer.recipient} has it.")
    elif transfer.state == FAILED:
        label = "Failed"
        words = f"Given up: {transfer.failed_reason or transfer.last_error or 'no reason recorded'}."
    elif transfer.state == EXPORTED:
        label = "Written to a package"
        words = "Waiting for the recipient's receipt to be carried back."
    elif transfer.state == SENDING:
        label = "Sending"
        words = f"{size_in_words(sent)} of {size_in_words(size)} sent (attempt {transfer.attempts})."
        if transfer.last_error:
            words += f" The last attempt was interrupted: {transfer.last_error}. It will be tried again."
    else:
        label = "Queued"
        words = "Sealed and waiting to be sent."
        if transfer.last_error:
            words += f" The last attempt failed: {transfer.last_error}. It will be tried again."
    return Status(transfer.state, label, words, sent, size, transfer.state in FINISHED, receipt)


@router.get("/transfers")
def ledger(request: Request, session: SessionDep, node: NodeDep) -> Response:
    transfers = list(reversed(node.transfers(session.actor)))
    now = node.clock()
    entries = [(t, status_of(t), t.deletion_json(now)) for t in transfers]  # (transfer, progress, deletion)
    return render(request, "transfers/ledger.html", entries=entries, active_nav="transfers",
                  deletion_colours=DELETION_COLOURS)


@router.get("/transfers/{transfer_id}")
def detail(request: Request, transfer_id: str, session: SessionDep, node: NodeDep, sent: int = 0) -> Response:
    transfer = node.transfer(session.actor, transfer_id)
    detail = transfer.to_json(detail=True, now=node.clock())
    receipt = (transfer.receipt or {}).get("body")
    return render(request, "transfers/detail.html", transfer=transfer, progress=status_of(transfer), info=detail,
                  receipt=receipt, deletion=detail["deletion"], just_sent=bool(sent), active_nav="transfers",
                  status_url=f"{WEB}/transfers/{transfer.id}/status.json", deletion_colours=DELETION_COLOURS)


@router.get("/transfers/{transfer_id}/status.json")
def status_json(transfer_id: str, session: SessionDep, node: NodeDep) -> JSONResponse:
    transfer = node.transfer(session.actor, transfer_id)
    return JSONResponse({"transfer": transfer.id, **status_of(transfer).to_json()},
                        headers={"Cache-Control": "no-store"})
