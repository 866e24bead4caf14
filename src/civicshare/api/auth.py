"""Who is calling: the bearer token on each request, turned into the core's ``Actor``."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from civicshare.access import Actor
from civicshare.errors import AuthenticationFailed
from civicshare.node import Node

log = structlog.get_logger("civicshare.api")

# auto_error=False: a missing token is refused by us, in the one JSON error shape. Declaring the
# scheme here is also what lists it under components.securitySchemes in /openapi.json.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="cs1.<id>.<secret>",
    description="An API token from `civicshare user add`, sent as `Authorization: Bearer cs1.<id>.<secret>`.",
)


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def current_actor(
    request: Request,
    node: Annotated[Node, Depends(get_node)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """Plain ``def``: FastAPI runs it in the threadpool, since authenticating queries the database."""
    if credentials is None:
        raise AuthenticationFailed(
            "This request needs an API token: send the header 'Authorization: Bearer cs1.<id>.<secret>'."
        )
    try:
        return node.authenticate(credentials.credentials)
    except AuthenticationFailed as exc:
        # Tokens no organisation owns cannot go in an organisation's audit log; the server log has them.
        client = request.client.host if request.client else "unknown"
        log.warning("token refused", client=client, path=request.url.path, reason=exc.message)
        raise


NodeDep = Annotated[Node, Depends(get_node)]
ActorDep = Annotated[Actor, Depends(current_actor)]
