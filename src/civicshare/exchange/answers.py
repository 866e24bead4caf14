"""Reading a partner node's answer to a signed request: the one rule for what counts as refused.

A 2xx answer must be a version 1 JSON object. Anything else is a ``Refused`` carrying the partner's
error code and message in plain words, and whether retrying could help: a 4xx answer whose code the
caller calls permanent cannot be cured by trying again; 5xx answers and faults can.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class Refused(Exception):
    """One request ended without the answer hoped for: a refusal or a fault, permanent or worth retrying."""

    def __init__(self, message: str, *, permanent: bool, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code


def read_answer(response: Any, recipient: str, what: str, permanent: Collection[str]) -> dict[str, Any]:
    """The JSON body of a successful answer; Refused (classified by ``permanent`` codes) otherwise."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict) or body.get("version") != 1:
            raise Refused(f"{recipient} answered the {what} with something that is not a version 1 answer.",
                          permanent=False, code="bad_answer")
        return body
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error, dict) and isinstance(error.get("message"), str) else None
    text = f"{recipient} refused the {what} (HTTP {status}" + (f", {code}" if code else "") + ")"
    text += f": {message.rstrip('.')}." if message else "."
    raise Refused(text, permanent=status < 500 and code in permanent, code=code or f"http_{status}")
