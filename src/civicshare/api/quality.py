"""A dataset's quality report over HTTP: JSON by default, or the HTML page with ``?format=html``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse

from civicshare.api.auth import ActorDep, NodeDep
from civicshare.errors import UsageError

router = APIRouter(tags=["quality"])

# The page carries its own styles and nothing else: no script may run, nothing may be fetched.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


@router.get("/holdings/{holding_id}/quality", response_model=None)
def holding_quality(
    holding_id: str, actor: ActorDep, node: NodeDep,
    fmt: Annotated[str, Query(alias="format", description="json (the default) or html")] = "json",
) -> JSONResponse | HTMLResponse:
    """The dataset's quality report: the one stored on import, or computed now and stored."""
    if fmt not in ("json", "html"):
        raise UsageError(f"Unknown report format {fmt!r}: choose json or html.")
    report = node.quality(actor, holding_id)
    if fmt == "json":
        body: dict[str, Any] = report.to_json()
        return JSONResponse(body)
    name = node.holding(actor, holding_id).name
    return HTMLResponse(report.to_html(title=name), headers={"Content-Security-Policy": _PAGE_POLICY})
