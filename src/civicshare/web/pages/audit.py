"""The audit log: who touched what and when, filtered by person, object, action and date; and "Verify now".

Filters are a GET form (reading changes nothing, and the address can be bookmarked). "Verify now" is a POST
(it signs nothing, but asks partners for their checkpoints when chosen) and shows the result in a panel:
the whole log recomputed and every checkpoint checked, or the first entry that fails.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from civicshare.errors import AuditTampered, CivicshareError, PermissionDenied
from civicshare.web.deps import CsrfFormDep, NodeDep, SessionDep
from civicshare.web.forms import FormErrors
from civicshare.web.templating import LOCAL_ZONE, render

router = APIRouter()

MAX_ROWS = 200
# Without a From date only this much recent history is read, so the page stays quick on a long log.
DEFAULT_DAYS = 90
OUTCOME_COLOURS = {"ok": "green", "refused": "orange", "failed": "red"}
FILTERS = ("by", "object", "action", "from", "to")


def _day(errors: FormErrors, values: dict[str, str], field: str) -> date | None:
    raw = values[field]
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.add(field, "Enter a real date, like 2026-11-22")
        return None


def _start(day: date) -> datetime:
    """The first moment of ``day`` in UK local time, as UTC."""
    return datetime.combine(day, time.min, LOCAL_ZONE).astimezone(UTC)


def _entries(node: Any, session: Any, values: dict[str, str], errors: FormErrors) -> tuple[list[Any], bool]:
    """Entries matching the filters, newest first, at most ``MAX_ROWS``; and whether more matched."""
    since, until = _day(errors, values, "from"), _day(errors, values, "to")
    if since and until and until < since:
        errors.add("to", "The end date must be the same as or after the start date")
    if errors:
        return [], False
    start = _start(since) if since else node.clock() - timedelta(days=DEFAULT_DAYS)
    found = node.audit_entries(session.actor, obj=values["object"] or None, by=values["by"] or None, since=start)
    if until is not None:
        end = _start(until + timedelta(days=1))
        found = [e for e in found if _utc(e.time) < end]
    if values["action"]:
        wanted = values["action"].casefold()
        found = [e for e in found if e.action.casefold() == wanted or e.action.casefold().startswith(wanted + ".")]
    found.reverse()
    return found[:MAX_ROWS], len(found) > MAX_ROWS


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _page(request: Request, node: Any, session: Any, values: dict[str, str], *, result: Any = None,
          failure: str | None = None, status: int = 200) -> Response:
    errors = FormErrors()
    entries, more = _entries(node, session, values, errors)
    return render(request, "audit/log.html", status=400 if errors else status, errors=errors, values=values,
                  entries=entries, more=more, max_rows=MAX_ROWS, result=result, failure=failure,
                  outcome_colours=OUTCOME_COLOURS, filtered=any(values.values()), default_days=DEFAULT_DAYS,
                  active_nav="audit")


@router.get("/audit")
def audit_log(request: Request, session: SessionDep, node: NodeDep) -> Response:
    values = {name: (request.query_params.get(name) or "").strip()[:200] for name in FILTERS}
    return _page(request, node, session, values)


@router.post("/audit/verify")
def verify_now(request: Request, session: SessionDep, node: NodeDep, form: CsrfFormDep) -> Response:
    values = {name: "" for name in FILTERS}
    witnesses = form.get("witnesses") == "yes"
    try:
        report = node.audit_verify(session.actor, [], witnesses=witnesses)
    except AuditTampered as exc:
        return _page(request, node, session, values, failure=exc.message, status=500)
    except PermissionDenied:
        raise
    except CivicshareError as exc:
        return _page(request, node, session, values, failure=exc.message, status=exc.http_status)
    return _page(request, node, session, values, result=report.to_json())
