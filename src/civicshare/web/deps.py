"""FastAPI dependencies of the web pages: the signed-in session from its cookie, and CSRF-checked forms."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from civicshare.access import Actor
from civicshare.audit.entry import REFUSED
from civicshare.errors import AuthenticationFailed, SecurityError, TooLarge
from civicshare.node import Node

log = structlog.get_logger("civicshare.web")

SESSION_COOKIE_HTTPS = "__Host-civicshare"
SESSION_COOKIE_HTTP = "civicshare_session"
SIGNIN_COOKIE = "civicshare_signin"
MAX_FORM_BYTES = 1024 * 1024  # urlencoded forms are short; uploads go through uploads.py
CSRF_MESSAGE = ("This form has expired or was not sent from civicshare. Go back, refresh the page and try again.")


class SignInNeeded(AuthenticationFailed):
    """No session, or one that ended: the web answers with a redirect to the sign-in page."""

    code = "sign_in_needed"

    def __init__(self, message: str = "Sign in to continue.", *, totp: bool = False) -> None:
        super().__init__(message)
        self.totp = totp  # signed in with a password, the second step still to do


class CsrfRefused(SecurityError):
    """A form arrived without the token of the session that asked for it."""

    code = "csrf"
    http_status = 403

    def __init__(self) -> None:
        super().__init__(CSRF_MESSAGE)


@dataclass(frozen=True)
class WebSession:
    """The signed-in person, as the pages see them."""

    actor: Actor
    csrf_token: str
    cookie_secret: str
    core: Any  # the core's civicshare.signin.Session

    @property
    def user_name(self) -> str:
        return self.actor.name

    @property
    def org_id(self) -> str:
        return self.actor.org_id


class WebForm(dict[str, str]):
    """A submitted form: the last value of each field, and every value through ``getlist``."""

    def __init__(self, data: FormData) -> None:
        super().__init__({k: v for k, v in data.items() if isinstance(v, str)})
        self._lists = {k: [v for v in data.getlist(k) if isinstance(v, str)] for k in data}

    def getlist(self, key: str) -> list[str]:
        return list(self._lists.get(key, []))


def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie_name(request: Request) -> str:
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, host-only and Path=/.
    return SESSION_COOKIE_HTTPS if is_https(request) else SESSION_COOKIE_HTTP


def cookie_options(request: Request) -> dict[str, Any]:
    """Flags of every cookie the web sets: never readable by scripts, never sent from another site."""
    return {"httponly": True, "samesite": "strict", "path": "/", "secure": is_https(request)}


def load_session(request: Request, *, totp_pending: bool = False) -> WebSession:
    """The session the cookie names (or, with ``totp_pending``, only the sign-in waiting for its code).
    Blocking (it reads the database), so call it from a thread."""
    secret = request.cookies.get(session_cookie_name(request))
    if not secret:
        raise SignInNeeded()
    node = get_node(request)
    try:
        core = node.signin.pending(secret) if totp_pending else node.signin.session(secret)
    except AuthenticationFailed as exc:
        if not totp_pending and _is_pending(node, secret):
            raise SignInNeeded(exc.message, totp=True) from None
        raise SignInNeeded(exc.message) from None
    session = WebSession(actor=core.actor, csrf_token=core.csrf_token, cookie_secret=secret, core=core)
    if not totp_pending:
        request.state.web_session = session  # pages show the navigation only once sign-in is complete
    return session


def _is_pending(node: Node, secret: str) -> bool:
    try:
        node.signin.pending(secret)
    except AuthenticationFailed:
        return False
    return True


def current_session(request: Request) -> WebSession:
    """Plain ``def``: FastAPI runs it in the threadpool, since it reads the database."""
    return load_session(request)


SessionDep = Annotated[WebSession, Depends(current_session)]


def refuse_csrf(request: Request, session: WebSession | None) -> CsrfRefused:
    """Audit a refused form (in the signed-in organisation's log, when there is one) and return the error."""
    if session is not None:
        get_node(request).audit.append(session.org_id, session.user_name, "web.csrf_refused", None,
                                       outcome=REFUSED, details={"path": request.url.path})
    else:
        client = request.client.host if request.client else "unknown"
        log.warning("form refused: no valid CSRF token", path=request.url.path, client=client)
    return CsrfRefused()


def check_csrf(request: Request, session: WebSession, sent: str | None) -> None:
    """Blocking: a refusal writes an audit entry."""
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise refuse_csrf(request, session)


async def read_form(request: Request) -> WebForm:
    """An urlencoded (or file-less multipart) form body, at most ``MAX_FORM_BYTES``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise TooLarge(f"The form is larger than {MAX_FORM_BYTES // 1024} kB; civicshare does not accept it.")
    # max_files=0: a file part is refused here, since Starlette would spool it to disk; uploads.py takes files.
    data = await request.form(max_files=0, max_fields=2000)
    return WebForm(data)


async def csrf_form(request: Request, session: SessionDep) -> WebForm:
    """The submitted form, once its ``csrf_token`` matched the session's (compared in constant time)."""
    form = await read_form(request)
    await run_in_threadpool(check_csrf, request, session, form.get("csrf_token"))
    return form


CsrfFormDep = Annotated[WebForm, Depends(csrf_form)]
NodeDep = Annotated[Node, Depends(get_node)]
