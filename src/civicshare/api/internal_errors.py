"""The last line of defence of both the API and the web pages: an unexpected exception becomes a 500.

The answer is the caller's (the API's JSON error shape, the web's error page); the traceback goes to
the server log only. The path is logged without its query string, which can carry names of people and
files; and as a plain traceback, not exc_info, since structlog's default renderer would print every
frame's locals, request headers, cookies and form fields among them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("civicshare.api")


class InternalErrors:
    """Turns an unexpected exception into the response ``answer(scope)`` makes, logged as ``event``."""

    def __init__(self, app: ASGIApp, *, answer: Callable[[Scope], Response], event: str = "unexpected error") -> None:
        self.app = app
        self.answer = answer
        self.event = event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            await send(message)
            started = started or message["type"] == "http.response.start"

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error(self.event, method=scope.get("method"), path=scope.get("path"),
                      exception="".join(traceback.format_exception(exc)))
            if started:
                raise  # too late for a clean answer; the server breaks the connection
            await self.answer(scope)(scope, receive, send)
