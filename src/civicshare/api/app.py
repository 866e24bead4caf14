"""The FastAPI application: routers, the one JSON error shape for every failure, and /healthz."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from civicshare import __version__
from civicshare.api import (
    agreement_exchange,
    agreements,
    audit,
    deletions,
    gate,
    holdings,
    keys,
    partners,
    quality,
    schemas,
    transfers,
    witness,
)
from civicshare.api import directory as directory_api
from civicshare.api import exchange as exchange_api
from civicshare.api.auth import NodeDep
from civicshare.api.internal_errors import InternalErrors
from civicshare.errors import AuthenticationFailed, CivicshareError, Problem
from civicshare.node import Node
from civicshare.web import mount_web

log = structlog.get_logger("civicshare.api")

MiB = 1024 * 1024
DEFAULT_MAX_DATASET_BYTES = 512 * MiB
DEFAULT_MAX_DOCUMENT_BYTES = 2048 * MiB
# Document uploads each hold a worker thread while they stream in; beyond this many, more wait.
CONCURRENT_DOCUMENT_IMPORTS = 16

_HTTP_CODES = {400: "usage", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large"}


@dataclass(frozen=True)
class Limits:
    """The largest request bodies this node accepts."""

    max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES


def error_body(code: str, message: str, problems: list[Problem] | None = None) -> dict[str, Any]:
    """The JSON error shape for failures that do not start as a ``CivicshareError``."""
    err = CivicshareError(message, problems=problems)
    err.code = code
    return err.to_json()


def _civicshare_error(_request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, CivicshareError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(err, AuthenticationFailed) else None
    return JSONResponse(err.to_json(), status_code=err.http_status, headers=headers)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors():
        loc = [str(part) for part in e.get("loc", ())]
        # ("query", "name") -> field "name"; the first element only says where the field was.
        field = ".".join(loc[1:]) or (loc[0] if loc else None)
        problems.append(Problem(message=str(e.get("msg", "is not valid")), field=field))
    body = error_body("usage", "The request is not valid; see the problems listed.", problems)
    return JSONResponse(body, status_code=400)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"There is no {request.url.path} in the civicshare API."
    elif exc.status_code == 405:
        message = f"{request.url.path} does not accept {request.method}."
    else:
        message = str(exc.detail)
    code = _HTTP_CODES.get(exc.status_code, "internal" if exc.status_code >= 500 else "usage")
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _internal_error(_scope: Scope) -> JSONResponse:
    body = error_body("internal", "civicshare met an unexpected error; the node operator can find the details in "
                                  "the server log.")
    return JSONResponse(body, status_code=500)


def create_app(node: Node, *, max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
               max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> FastAPI:
    app = FastAPI(
        title="civicshare",
        version=__version__,
        description="Hold and share citizen records without exposing them.",
    )
    app.state.node = node
    app.state.limits = Limits(max_dataset_bytes, max_document_bytes)
    app.state.document_imports = anyio.CapacityLimiter(CONCURRENT_DOCUMENT_IMPORTS)
    app.add_exception_handler(CivicshareError, _civicshare_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(InternalErrors, answer=_internal_error)
    app.include_router(holdings.router, prefix="/v1")
    app.include_router(quality.router, prefix="/v1")
    app.include_router(schemas.router, prefix="/v1")
    app.include_router(keys.router, prefix="/v1")
    app.include_router(audit.router, prefix="/v1")
    app.include_router(partners.router, prefix="/v1")
    app.include_router(agreements.router, prefix="/v1")
    app.include_router(transfers.router, prefix="/v1")
    app.include_router(directory_api.router, prefix="/v1")
    app.include_router(directory_api.public_router)
    app.include_router(gate.router)
    app.include_router(witness.router)
    app.include_router(exchange_api.router)
    app.include_router(agreement_exchange.router)
    app.include_router(deletions.router)
    mount_web(app, node)  # the web UI at /web, its GOV.UK assets at /assets; / redirects there

    @app.get("/healthz", tags=["health"])
    def healthz(node: NodeDep) -> JSONResponse:
        """Liveness and database reachability; needs no token."""
        try:
            with node.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.warning("health check: database unreachable", database=node.db.backend)
            body = error_body("unavailable", f"The {node.db.backend} database cannot be reached.")
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, "database": node.db.backend})

    return app
