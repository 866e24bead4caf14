"""Data sharing agreements: the register (with review dates and warnings), each agreement, drafting one from
the template, and its lifecycle: propose to the other parties, sign (a data protection officer only), revoke.

Drafting is two steps, as at the command line: the template form makes a YAML agreement that validates as
it stands; the person reviews and edits it, and creating it checks every line again (each problem shown).
The lifecycle's notices to partners go out from ``serve`` in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from civicshare.access import Permission
from civicshare.agreements.documents import MAX_REASON
from civicshare.agreements.model import MAX_AGREEMENT_BYTES
from civicshare.agreements.parse import YAML
from civicshare.agreements.register import ACTIVE, DRAFT, EXPIRED, PROPOSED, REVOKED, SIGNED, SUPERSEDED
from civicshare.errors import CivicshareError, InvalidInput, PermissionDenied
from civicshare.node import Node
from civicshare.web.deps import CsrfFormDep, NodeDep, SessionDep, WebForm, WebSession
from civicshare.web.forms import FormErrors
from civicshare.web.templating import WEB, render

router = APIRouter()

STATE_COLOURS = {DRAFT: "grey", PROPOSED: "blue", SIGNED: "turquoise", ACTIVE: "green", EXPIRED: "orange",
                 REVOKED: "red", SUPERSEDED: "purple"}
DONE = {
    "created": "The agreement is in the register as a draft. Check it, then propose it to the other parties.",
    "proposed": "The agreement was proposed: each other party is sent it, and their data protection officers "
                "can sign it.",
    "signed": "You signed the agreement for your organisation. The other parties are told.",
    "revoked": "The agreement is revoked. Every other party is told, and no data moves under it any more.",
}



def _detail_url(agreement_id: str, version: int, done: str | None = None) -> str:
    url = f"{WEB}/agreements/{quote(agreement_id, safe='')}?version={version}"
    return url + (f"&done={done}" if done else "")


# The register --------------------------------------------------------------------------------------------


@router.get("/agreements")
def register(request: Request, session: SessionDep, node: NodeDep) -> Response:
    records = node.agreements(session.actor)
    # The newest version of each agreement first; earlier versions are on its page.
    newest: dict[str, Any] = {}
    for record in records:
        newest[record.id] = record
    rows = sorted(newest.values(), key=lambda r: (r.agreement.review_date, r.id))
    warnings = [(r, w) for r in rows for w in r.warnings if r.state in (ACTIVE, SIGNED, PROPOSED)]
    return render(request, "agreements/register.html", records=rows, warnings=warnings,
                  state_colours=STATE_COLOURS, can_manage=session.actor.may(Permission.AGREEMENTS_MANAGE),
                  active_nav="agreements")


@router.get("/agreements.csv")
def register_csv(session: SessionDep, node: NodeDep) -> Response:
    return Response(node.agreements_csv(session.actor), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="agreements-{session.org_id}.csv"'})


# Drafting from the template ------------------------------------------------------------------------------


def _template_choices(node: Any, session: Any) -> dict[str, Any]:
    actor = session.actor
    partners = [p for p in node.partners(actor) if p.revoked_at is None]
    datasets: dict[str, list[str]] = {}
    for h in node.list_holdings(actor):
        if h.kind == "dataset" and not h.shredded and h.columns and h.quarantine_of is None:
            datasets[h.name] = list(h.columns)
    return {
        "partner_options": [("", "Choose the recipient")] + [(p.partner_id, f"{p.name} ({p.partner_id})")
                                                             for p in partners],
        "dataset_options": [("", "Choose a dataset")] + [(name, name) for name in sorted(datasets)],
        "datasets": sorted(datasets.items()),
    }


def _new_page(request: Request, node: Any, session: Any, values: dict[str, str], *, status: int = 200,
              errors: FormErrors | None = None) -> Response:
    session.actor.require(Permission.AGREEMENTS_MANAGE, "draft data sharing agreements")
    return render(request, "agreements/new.html", status=status, errors=errors or FormErrors(), values=values,
                  active_nav="agreements", **_template_choices(node, session))


@router.get("/agreements/new")
def new_form(request: Request, session: SessionDep, node: NodeDep) -> Response:
    return _new_page(request, node, session, {"recipient": "", "covers": "", "dataset": "", "fields": ""})


def _review_page(request: Request, text: str, *, status: int = 200, errors: FormErrors | None = None) -> Response:
    return render(request, "agreements/review.html", status=status, text=text, errors=errors or FormErrors(),
                  active_nav="agreements")


@router.post("/agreements/new")
def from_template(request: Request, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    errors = FormErrors()
    values = {
        "recipient": errors.text(form, "recipient", missing="Choose the organisation that receives the data",
                                 max_length=100),
        "covers": errors.choice(form, "covers", ["dataset", "documents"],
                                missing="Choose whether the agreement covers a dataset or documents") or "",
        "dataset": (form.get("dataset") or "").strip(),
        "fields": errors.text(form, "fields", max_length=2000),
    }
    fields = [f.strip() for f in values["fields"].split(",") if f.strip()]
    if values["covers"] == "dataset" and not values["dataset"]:
        errors.add("dataset", "Choose the dataset the agreement covers")
    if errors:
        return _new_page(request, node, session, values, status=400, errors=errors)
    try:
        text = node.agreement_template(
            session.actor, session.org_id, values["recipient"],
            dataset=values["dataset"] if values["covers"] == "dataset" else None,
            fields=fields or None, documents=values["covers"] == "documents")
    except PermissionDenied:
        raise
    except CivicshareError as exc:
        errors.add("fields" if values["covers"] == "dataset" else "recipient", exc.message)
        return _new_page(request, node, session, values, status=400, errors=errors)
    return _review_page(request, text)


@router.post("/agreements")
def create(request: Request, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    errors = FormErrors()
    text = form.get("text") or ""
    if not text.strip():
        errors.add("text", "Enter the agreement")
    elif len(text.encode("utf-8")) > MAX_AGREEMENT_BYTES:
        errors.add("text", f"An agreement is at most {MAX_AGREEMENT_BYTES:,} bytes")
    if errors:
        return _review_page(request, text, status=400, errors=errors)
    try:
        record = node.create_agreement(session.actor, text, fmt=YAML)
    except PermissionDenied:
        raise
    except InvalidInput as exc:
        errors.add("text", exc.message)
        for problem in exc.problems:
            errors.add(None, str(problem))
        return _review_page(request, text, status=400, errors=errors)
    except CivicshareError as exc:
        errors.add("text", exc.message)
        return _review_page(request, text, status=exc.http_status, errors=errors)
    return RedirectResponse(_detail_url(record.id, record.version, "created"), status_code=303)


# One agreement and its lifecycle -------------------------------------------------------------------------


@router.get("/agreements/{agreement_id}")
def detail(request: Request, agreement_id: str, session: SessionDep, node: NodeDep, version: int | None = None,
           done: str | None = None) -> Response:
    record = node.agreement(session.actor, agreement_id, version)
    versions = [r for r in node.agreements(session.actor) if r.id == record.id]
    org = session.org_id
    stored = record.stored_state
    actions = {
        "propose": session.actor.may(Permission.AGREEMENTS_MANAGE) and stored in (DRAFT, PROPOSED)
        and record.agreement.provider == org,
        "sign": session.actor.may(Permission.AGREEMENTS_SIGN) and stored == PROPOSED and org in record.waiting_for,
        "revoke": session.actor.may(Permission.AGREEMENTS_MANAGE) and stored in (PROPOSED, SIGNED),
    }
    waiting_dpo = (stored == PROPOSED and org in record.waiting_for
                   and not session.actor.may(Permission.AGREEMENTS_SIGN))
    return render(request, "agreements/detail.html", record=record, a=record.agreement, versions=versions,
                  actions=actions, waiting_dpo=waiting_dpo, done=DONE.get(done or ""),
                  notices=node.agreement_notices(session.actor, record.id), state_colours=STATE_COLOURS,
                  active_nav="agreements")


def _version(form: Any) -> int | None:
    raw = (form.get("version") or "").strip()
    return int(raw) if raw.isdigit() else None


def _lifecycle_error(request: Request, node: Any, session: Any, agreement_id: str, version: int | None,
                     exc: CivicshareError) -> Response:
    """The agreement's page again, with the refusal in the error summary."""
    record = node.agreement(session.actor, agreement_id, version)
    errors = FormErrors()
    errors.add(None, exc.message)
    versions = [r for r in node.agreements(session.actor) if r.id == record.id]
    return render(request, "agreements/detail.html", status=exc.http_status, errors=errors, record=record,
                  a=record.agreement, versions=versions, actions={"propose": False, "sign": False, "revoke": False},
                  waiting_dpo=False, done=None, notices=[], state_colours=STATE_COLOURS, active_nav="agreements")


def _step(request: Request, agreement_id: str, session: WebSession, node: Node, form: WebForm,
          use_case: Callable[..., Any], done: str) -> Response:
    """One lifecycle step (propose, sign): back to the agreement, or its page with the core's refusal."""
    version = _version(form)
    try:
        record = use_case(session.actor, agreement_id, version)
    except PermissionDenied:
        raise  # the app's 403 page
    except CivicshareError as exc:
        return _lifecycle_error(request, node, session, agreement_id, version, exc)
    return RedirectResponse(_detail_url(record.id, record.version, done), status_code=303)


@router.post("/agreements/{agreement_id}/propose")
def propose(request: Request, agreement_id: str, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    return _step(request, agreement_id, session, node, form, node.propose_agreement, "proposed")


@router.post("/agreements/{agreement_id}/sign")
def sign(request: Request, agreement_id: str, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    return _step(request, agreement_id, session, node, form, node.sign_agreement, "signed")


def _revoke_page(request: Request, record: Any, reason: str, *, status: int = 200,
                 errors: FormErrors | None = None) -> Response:
    return render(request, "agreements/revoke.html", status=status, record=record, reason=reason,
                  errors=errors or FormErrors(), max_reason=MAX_REASON, active_nav="agreements")


@router.get("/agreements/{agreement_id}/revoke")
def revoke_form(request: Request, agreement_id: str, session: SessionDep, node: NodeDep,
                version: int | None = None) -> Response:
    session.actor.require(Permission.AGREEMENTS_MANAGE, "revoke data sharing agreements")
    return _revoke_page(request, node.agreement(session.actor, agreement_id, version), "")


@router.post("/agreements/{agreement_id}/revoke")
def revoke(request: Request, agreement_id: str, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    session.actor.require(Permission.AGREEMENTS_MANAGE, "revoke data sharing agreements")
    version = _version(form)
    record = node.agreement(session.actor, agreement_id, version)
    errors = FormErrors()
    reason = " ".join(errors.text(form, "reason", missing="Enter why the agreement is revoked",
                                  max_length=MAX_REASON).split())
    if errors:
        return _revoke_page(request, record, reason, status=400, errors=errors)
    try:
        record = node.revoke_agreement(session.actor, agreement_id, reason, record.version)
    except PermissionDenied:
        raise
    except CivicshareError as exc:
        errors.add("reason", exc.message)
        return _revoke_page(request, record, reason, status=exc.http_status, errors=errors)
    return RedirectResponse(_detail_url(record.id, record.version, "revoked"), status_code=303)
