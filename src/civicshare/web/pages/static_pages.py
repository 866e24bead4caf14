"""Pages anyone may read, signed in or not: the accessibility statement and the cookies page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from civicshare.web.deps import SignInNeeded, load_session
from civicshare.web.templating import render

router = APIRouter()


def _optional_session(request: Request) -> None:
    """Show the navigation to someone signed in; these pages need no session."""
    try:
        load_session(request)
    except SignInNeeded:
        pass


@router.get("/accessibility")
async def accessibility(request: Request) -> Response:
    await run_in_threadpool(_optional_session, request)
    return render(request, "static_pages/accessibility.html")


@router.get("/cookies")
async def cookies(request: Request) -> Response:
    await run_in_threadpool(_optional_session, request)
    return render(request, "static_pages/cookies.html")
