"""The web UI: a FastAPI sub-application mounted at /web, with HTML error pages and strict security headers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicshare.api.internal_errors import InternalErrors
from civicshare.errors import CivicshareError, NotFound, PermissionDenied
from civicshare.node import Node
from civicshare.web.deps import CsrfRefused, SignInNeeded
from civicshare.web.templating import SUPPORTED_SNIPPET_HASH, WEB, render

log = structlog.get_logger("civicshare.web")

STATIC = Path(__file__).parent / "static"
GOVUK = STATIC / "govuk"

CSP = "; ".join([
    "default-src 'self'",
    f"script-src 'self' '{SUPPORTED_SNIPPET_HASH}'",
    "img-src 'self' data:",
    "style-src 'self'",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every web response; pages (not static files) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{WEB}/static/")
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in {name for name, _ in SECURITY_HEADERS}]
                headers += SECURITY_HEADERS
                if https:  # browsers ignore HSTS over plain http; over https it pins https for a year
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                if not static:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_BARE_500 = ("<!DOCTYPE html><html lang=\"en\"><head><title>Sorry, there is a problem with the service</title></head>"
             "<body><main><h1>Sorry, there is a problem with the service</h1><p>Try again later.</p></main></body>"
             "</html>")


def _error_page(scope: Scope) -> Response:
    """The generic 500 page (a bare one if the page template itself is broken)."""
    try:
        return render(Request(scope), "errors/500.html", status=500)
    except Exception:  # noqa: BLE001 - the template is what failed: say so plainly
        return HTMLResponse(_BARE_500, status_code=500)


def _safe_next(request: Request) -> str:
    """Where to come back after sign-in: this page, for GET; the section's start page would lose a POST."""
    path = request.url.path
    if request.method != "GET":
        return f"{WEB}/"
    return path + (f"?{request.url.query}" if request.url.query else "")


def _sign_in_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    if exc.totp:
        return RedirectResponse(f"{WEB}/sign-in/two-factor", status_code=303)
    target = f"{WEB}/sign-in?next={quote(_safe_next(request), safe='/')}"
    return RedirectResponse(target, status_code=303)


def _civicshare_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CivicshareError)
    if isinstance(exc, PermissionDenied):
        return render(request, "errors/403.html", status=403, message=exc.message)
    if isinstance(exc, CsrfRefused):
        return render(request, "errors/error.html", status=403, error=exc, heading="This form has expired")
    if isinstance(exc, NotFound):
        return render(request, "errors/404.html", status=404, message=exc.message)
    if exc.http_status >= 500:
        log.error("civicshare error in the web UI", path=request.url.path, code=exc.code, message=exc.message)
    return render(request, "errors/error.html", status=exc.http_status, error=exc,
                  heading=_HEADINGS.get(exc.http_status, "Sorry, there is a problem"))


_HEADINGS = {
    400: "There is a problem with the request",
    401: "This was refused",
    403: "You cannot do this",
    409: "This has already been done",
    413: "The file is too large",
    422: "There is a problem with what was sent",
    503: "Sorry, the service is unavailable",
}


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return render(request, "errors/404.html", status=404, message=None)
    if exc.status_code == 405:
        return render(request, "errors/error.html", status=405, heading="This page cannot do that",
                      error=CivicshareError(f"{request.url.path} does not accept {request.method} requests."),
                      headers=dict(exc.headers or {}))
    return render(request, "errors/error.html", status=exc.status_code,
                  heading=_HEADINGS.get(exc.status_code, "Sorry, there is a problem"),
                  error=CivicshareError(str(exc.detail)))


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return render(request, "errors/error.html", status=400, heading=_HEADINGS[400],
                  error=CivicshareError("The address or form was not in the form civicshare expects. Go back "
                                        "and try again."))


def create_web(node: Node) -> FastAPI:
    """The web UI over a node; ``mount_web`` puts it at /web on the node's app."""
    from civicshare.web.pages import include_pages

    web = FastAPI(title="civicshare web", docs_url=None, redoc_url=None, openapi_url=None)
    web.state.node = node
    web.add_exception_handler(SignInNeeded, _sign_in_needed)
    web.add_exception_handler(CivicshareError, _civicshare_error)
    web.add_exception_handler(StarletteHTTPException, _http_error)
    web.add_exception_handler(RequestValidationError, _validation_error)
    web.add_middleware(InternalErrors, answer=_error_page, event="unexpected error in the web UI")
    web.add_middleware(SecurityHeaders)
    web.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    include_pages(web)
    return web


def assets_present() -> bool:
    return (GOVUK / "govuk-frontend.min.css").is_file()


def mount_web(app: FastAPI, node: Node) -> FastAPI:
    """Mount the web UI at /web, its fonts and images at /assets, and send / to the web UI."""
    web = create_web(node)
    # Upload limits and the document-import limiter are the API's, so both edges refuse the same sizes.
    web.state.limits = app.state.limits
    web.state.document_imports = app.state.document_imports
    if not assets_present():
        log.warning("the GOV.UK Frontend files are missing, so web pages show unstyled; run `make install`",
                    expected=str(GOVUK))
    app.mount(WEB, web, name="web")
    # govuk-frontend's CSS names its fonts and images under /assets.
    app.mount("/assets", StaticFiles(directory=GOVUK / "assets", check_dir=False), name="govuk-assets")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{WEB}/", status_code=303)

    return web

