"""The gate at the HTTP edge: every node-to-node route reads its body and passes the gate here first.

``check_signed`` is what every node-to-node route calls first: it rebuilds the URL the sender signed
(from this node's configured public URL when it has one, so a TLS-terminating proxy in front does not
change it) and runs the core's ``Gate``. The ping route lets operators test, end to end, that a
partner's node trusts theirs: it answers with who the gate says signed the request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from civicshare.api.auth import NodeDep
from civicshare.api.bodies import read_limited
from civicshare.errors import CivicshareError
from civicshare.exchange.httpsig import SignedRequest
from civicshare.node import Node

router = APIRouter(tags=["exchange"])


def signed_url(node: Node, request: Request) -> str:
    """The URL as the sender signed it: the node's public URL plus the path and query as received."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode("ascii")
    query = request.scope.get("query_string") or b""
    target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    base = (node.config.url or "").rstrip("/")
    if base:
        return base + target
    return f"{request.url.scheme}://{request.url.netloc}{target}"


async def check_signed(node: Node, request: Request, org: str, body: bytes = b"") -> SignedRequest:
    """Run the gate over this request to ``org``; raises the refusal (already audited) if any."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    return await run_in_threadpool(node.gate.check, org, method=request.method, url=signed_url(node, request),
                                   headers=headers, body=body)


async def read_signed(node: Node, request: Request, org: str, limit: int, what: str) -> tuple[bytes, SignedRequest]:
    """Read the body (at most ``limit`` bytes) and pass the gate; a body refused for its size or for
    being cut short is logged like any other refusal, with the sender it claims."""
    try:
        body = await read_limited(request, limit, what)
    except CivicshareError as exc:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        await run_in_threadpool(node.gate.refused, org, exc, method=request.method,
                                url=signed_url(node, request), headers=headers)
        raise
    return body, await check_signed(node, request, org, body)


@router.get("/orgs/{org}/ping")
async def ping(org: str, request: Request, node: NodeDep) -> dict[str, Any]:
    """A signed request from a partner's node: answers with who signed it, or the refusal."""
    _body, signed = await read_signed(node, request, org, 0, "This request's body")
    return {"version": 1, "organisation": org, "sender": signed.sender}
