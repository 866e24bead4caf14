"""Share a holding: choose the holding, the partner and the agreement, preview exactly what would leave, send.

The preview is the core's (``Node.preview_share``): the same checks the share runs, so the page says in the
share's own words why it would be refused. Sending runs the share itself, which checks everything again;
the person then watches the transfer's page until the receipt is verified.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from civicshare.access import Permission
from civicshare.agreements.register import ACTIVE
from civicshare.errors import CivicshareError, NotFound, UsageError
from civicshare.exchange.preview import SharePreview
from civicshare.web.deps import CsrfFormDep, NodeDep, SessionDep, WebForm
from civicshare.web.forms import FormErrors
from civicshare.web.templating import WEB, render

router = APIRouter()

FIELDS = ("holding", "to", "agreement")


def _choices(node: Any, session: Any) -> dict[str, Any]:
    """The holdings, partners and agreements a share may name, as (value, text) options."""
    actor = session.actor
    actor.require(Permission.TRANSFERS_SHARE, "share holdings with partners")
    holdings = [h for h in node.list_holdings(actor) if not h.shredded and h.quarantine_of is None]
    partners = [p for p in node.partners(actor) if p.revoked_at is None]
    agreements = [r for r in node.agreements(actor)
                  if r.agreement.provider == actor.org_id and r.state == ACTIVE]
    return {
        "holding_options": [("", "Choose a holding")] + [
            (h.id, f"{h.name} ({h.kind}{', ' + format(h.rows, ',') + ' rows' if h.rows is not None else ''})")
            for h in holdings],
        "partner_options": [("", "Choose a partner")] + [(p.partner_id, f"{p.name} ({p.partner_id})")
                                                         for p in partners],
        "agreement_options": [("", "Choose an agreement")] + [
            (r.id, f"{r.id}: {r.agreement.purpose[:80]} (to {', '.join(r.agreement.recipients)})")
            for r in agreements],
        "has_agreements": bool(agreements),
    }


def _form_page(request: Request, node: Any, session: Any, values: dict[str, str], *, status: int = 200,
               errors: FormErrors | None = None) -> Response:
    return render(request, "share/choose.html", status=status, errors=errors or FormErrors(), values=values,
                  active_nav="share", **_choices(node, session))


@router.get("/share")
def share_form(request: Request, session: SessionDep, node: NodeDep, holding: str | None = None,
               to: str | None = None, agreement: str | None = None) -> Response:
    values = {"holding": holding or "", "to": to or "", "agreement": agreement or ""}
    return _form_page(request, node, session, values)


def _read(form: WebForm, errors: FormErrors) -> dict[str, str]:
    return {
        "holding": errors.text(form, "holding", missing="Choose the holding to share", max_length=100),
        "to": errors.text(form, "to", missing="Choose the partner to share it with", max_length=100),
        "agreement": errors.text(form, "agreement", missing="Choose the agreement the share goes under",
                                 max_length=100),
    }


def _preview(node: Any, session: Any, values: dict[str, str], errors: FormErrors) -> SharePreview | None:
    """The core's preview, or None with the fault placed by its field."""
    try:
        return node.preview_share(session.actor, values["holding"], values["to"], values["agreement"])
    except NotFound as exc:
        errors.add("holding", exc.message)
    except UsageError as exc:
        errors.add("to", exc.message)
    return None


def _preview_page(request: Request, preview: SharePreview, values: dict[str, str], *, status: int = 200,
                  errors: FormErrors | None = None) -> Response:
    return render(request, "share/preview.html", status=status, preview=preview, values=values,
                  errors=errors or FormErrors(), active_nav="share")


@router.post("/share/preview")
def share_preview(request: Request, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    errors = FormErrors()
    values = _read(form, errors)
    preview = None if errors else _preview(node, session, values, errors)
    if preview is None:
        return _form_page(request, node, session, values, status=400, errors=errors)
    return _preview_page(request, preview, values)


@router.post("/share/send")
def share_send(request: Request, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    errors = FormErrors()
    values = _read(form, errors)
    if errors:
        return _form_page(request, node, session, values, status=400, errors=errors)
    try:
        transfer = node.share(session.actor, values["holding"], values["to"], agreement=values["agreement"],
                               ask_partner=True)
    except CivicshareError as exc:
        # Refused now (the agreement ended since the preview, say): show the preview again with the reason.
        preview = _preview(node, session, values, errors)
        if preview is None:
            return _form_page(request, node, session, values, status=400, errors=errors)
        errors.add(None, exc.message)
        return _preview_page(request, preview, values, status=exc.http_status, errors=errors)
    return RedirectResponse(f"{WEB}/transfers/{transfer.id}?sent=1", status_code=303)
