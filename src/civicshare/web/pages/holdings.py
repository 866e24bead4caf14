"""Holdings pages: the list, a holding's page (quality report, where it came from, its agreement, its
audit trail), export as a download, and shredding after a confirmation page. Imports are in
holdings_import.py, included here."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from civicshare.access import Actor, Permission
from civicshare.agreements.register import AgreementRecord
from civicshare.api.holdings import EXPORT_MEDIA_TYPES
from civicshare.audit import AuditEntry
from civicshare.errors import NotFound
from civicshare.exchange.transfers import InboundTransfer, Transfer
from civicshare.holdings.store import DATASET, DOCUMENT, EXPORT_FORMATS, MEDIA_TYPE_RE, Holding
from civicshare.memfile import memory_file
from civicshare.node import Node
from civicshare.schemas.quality import QualityReport, is_report
from civicshare.web.charts import Chart, quality_chart
from civicshare.web.deps import CsrfFormDep, NodeDep, SessionDep
from civicshare.web.forms import FormErrors
from civicshare.web.pages import holdings_import
from civicshare.web.templating import WEB, render

router = APIRouter()
router.include_router(holdings_import.router)

CHUNK = 1024 * 1024
AUDIT_SHOWN = 50  # the newest entries of a holding's trail; the audit log has the rest
FORMAT_CHOICES = (
    ("csv", "CSV (comma-separated values)", "Opens in any spreadsheet; plain text."),
    ("xlsx", "Excel workbook (XLSX)", None),
    ("jsonl", "JSON Lines", "One JSON record per line, for systems and scripts."),
    ("parquet", "Parquet", "For analysis tools such as DuckDB, R or Python."),
)
DONE_MESSAGES = {
    "imported": "The holding was imported and encrypted.",
    "shredded": "The holding was shredded. Its contents can never be read again, by anyone.",
}



def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


# The list ------------------------------------------------------------------------------------


@router.get("/holdings")
async def holdings_list(request: Request, session: SessionDep, node: NodeDep) -> Response:
    holdings = await run_in_threadpool(node.list_holdings, session.actor)
    holdings.sort(key=lambda h: (h.shredded, -h.created_at.timestamp()))
    return render(request, "holdings/list.html", active_nav="holdings", holdings=holdings,
                  may_import=session.actor.may(Permission.HOLDINGS_IMPORT))


# A holding's page ----------------------------------------------------------------------------


@dataclass
class HoldingPage:
    holding: Holding
    report: QualityReport | None
    chart: Chart | None
    quarantine: Holding | None
    quarantine_of: Holding | None
    received: InboundTransfer | None
    agreement: AgreementRecord | None
    agreement_missing: bool
    shares: list[Transfer] | None  # None: the role cannot see the ledger
    audit: list[AuditEntry] | None  # None: the role cannot see the audit log
    audit_more: int


def _stored_report(holding: Holding) -> QualityReport | None:
    """The report stored with the holding at import, read without opening the data again."""
    if not holding.quality:
        return None
    try:
        data = json.loads(holding.quality)
    except ValueError:
        return None
    return QualityReport.from_json(data) if is_report(data) else None


def holding_page(node: Node, actor: Actor, holding_id: str) -> HoldingPage:
    """Everything a holding's page shows (blocking: run in a thread). The view is logged by the core."""
    holding = node.holding(actor, holding_id)
    report = _stored_report(holding)
    if report is None and holding.kind == DATASET and not holding.shredded:
        report = node.quality(actor, holding_id)
    quarantine = node.quarantine_of(actor, holding_id)
    source = None
    if holding.quarantine_of:
        found = [h for h in node.list_holdings(actor) if h.id == holding.quarantine_of]
        source = found[0] if found else None
    received = next((e for e in node.inbox(actor) if e.holding_id == holding_id), None)
    agreement, missing = None, False
    if received is not None and received.agreement_id and actor.may(Permission.AGREEMENTS_READ):
        try:
            agreement = node.agreement(actor, received.agreement_id, received.agreement_version)
        except NotFound:
            missing = True  # the page still shows the id the transfer named
    shares = None
    if actor.may(Permission.TRANSFERS_READ):
        shares = [t for t in node.transfers(actor) if t.holding_id == holding_id]
        shares.sort(key=lambda t: t.created_at, reverse=True)
    audit, more = None, 0
    if actor.may(Permission.AUDIT_READ):
        entries = node.audit_entries(actor, obj=holding_id)
        more = max(0, len(entries) - AUDIT_SHOWN)
        audit = list(reversed(entries[-AUDIT_SHOWN:]))
    return HoldingPage(holding, report, quality_chart(report) if report else None, quarantine, source, received,
                       agreement, missing, shares, audit, more)


@router.get("/holdings/{holding_id}")
async def holding_detail(request: Request, holding_id: str, session: SessionDep, node: NodeDep,
                         done: str | None = None) -> Response:
    page = await run_in_threadpool(holding_page, node, session.actor, holding_id)
    actor = session.actor
    return render(request, "holdings/detail.html", active_nav="holdings", page=page, h=page.holding,
                  done=DONE_MESSAGES.get(done or ""), may_share=actor.may(Permission.TRANSFERS_SHARE),
                  may_shred=actor.may(Permission.HOLDINGS_SHRED),
                  may_export=actor.may(Permission.HOLDINGS_EXPORT))


# Export --------------------------------------------------------------------------------------


def _export_page(request: Request, holding: Holding, *, errors: FormErrors | None = None,
                 chosen: str | None = None, status: int = 200) -> Response:
    return render(request, "holdings/export.html", status=status, active_nav="holdings", h=holding,
                  formats=FORMAT_CHOICES, chosen=chosen or "csv", errors=errors or FormErrors())


def _exportable(node: Node, actor: Actor, holding_id: str) -> Holding:
    actor.require(Permission.HOLDINGS_EXPORT, "export holdings")
    return node.holding(actor, holding_id)


@router.get("/holdings/{holding_id}/export")
async def export_form(request: Request, holding_id: str, session: SessionDep, node: NodeDep) -> Response:
    holding = await run_in_threadpool(_exportable, node, session.actor, holding_id)
    return _export_page(request, holding)


def _read_all(body: io.FileIO) -> Iterator[bytes]:
    with body:
        while chunk := body.read(CHUNK):
            yield chunk


def _export(node: Node, actor: Actor, holding_id: str, fmt: str | None) -> tuple[Holding, io.FileIO, int]:
    """The holding written by the core into an in-memory file: never plaintext on disk."""
    with memory_file("civicshare-export") as (fd, path):
        holding, _rows = node.export(actor, holding_id, path, fmt, overwrite=True)
        size = os.fstat(fd).st_size
        # A second descriptor keeps the in-memory file alive once this block closes the first.
        return holding, io.FileIO(os.dup(fd), "rb"), size


@router.post("/holdings/{holding_id}/export")
async def export_download(request: Request, holding_id: str, session: SessionDep, form: CsrfFormDep,
                          node: NodeDep) -> Response:
    holding = await run_in_threadpool(_exportable, node, session.actor, holding_id)
    fmt = None
    if holding.kind == DATASET:
        errors = FormErrors()
        fmt = errors.choice(form, "format", EXPORT_FORMATS, missing="Select the format to download the dataset in")
        if errors:
            return _export_page(request, holding, errors=errors, status=400)
    holding, body, size = await run_in_threadpool(_export, node, session.actor, holding_id, fmt)
    if holding.kind == DOCUMENT:
        valid = MEDIA_TYPE_RE.match(holding.media_type)
        media_type, filename = holding.media_type if valid else "application/octet-stream", holding.name
    else:
        assert fmt is not None
        media_type, filename = EXPORT_MEDIA_TYPES[fmt], f"{holding.name}.{fmt}"
    headers = {"Content-Type": media_type, "Content-Length": str(size), "Content-Disposition": _attachment(filename)}
    return StreamingResponse(_read_all(body), headers=headers, background=BackgroundTask(body.close))


def _attachment(filename: str) -> str:
    """A Content-Disposition header that cannot be broken by the name (RFC 6266 with RFC 8187)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\/' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# Shred ---------------------------------------------------------------------------------------


def _shreddable(node: Node, actor: Actor, holding_id: str) -> Holding:
    actor.require(Permission.HOLDINGS_SHRED, "shred holdings")
    return node.holding(actor, holding_id)


def _shred_page(request: Request, holding: Holding, errors: FormErrors | None = None, status: int = 200) -> Response:
    return render(request, "holdings/shred.html", status=status, active_nav="holdings", h=holding,
                  errors=errors or FormErrors())


@router.get("/holdings/{holding_id}/shred")
async def shred_confirm(request: Request, holding_id: str, session: SessionDep, node: NodeDep) -> Response:
    holding = await run_in_threadpool(_shreddable, node, session.actor, holding_id)
    return _shred_page(request, holding)


@router.post("/holdings/{holding_id}/shred")
async def shred(request: Request, holding_id: str, session: SessionDep, form: CsrfFormDep, node: NodeDep) -> Response:
    holding = await run_in_threadpool(_shreddable, node, session.actor, holding_id)
    errors = FormErrors()
    if form.get("confirm") != "yes":
        errors.add("confirm", f"Confirm that {holding.name} will be destroyed and can never be recovered")
        return _shred_page(request, holding, errors, status=400)
    await run_in_threadpool(node.shred, session.actor, holding_id)
    return _redirect(f"{WEB}/holdings/{holding_id}?done=shredded")
