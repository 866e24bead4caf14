"""Reading request bodies with a hard size limit, before anything parses them."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from civicshare.errors import TooLarge, UsageError


async def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The raw body, refused (TooLarge) as soon as it outgrows ``limit``; never buffered beyond it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} is never more than {limit:,} bytes.")
    # The chunks are joined once at the end: one copy of the body, not a growing buffer and a copy of it.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"{what} is never more than {limit:,} bytes.")
    except ClientDisconnect:
        raise UsageError(f"The request was interrupted before {what.lower()} arrived.") from None
    return b"".join(chunks)
