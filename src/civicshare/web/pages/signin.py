"""Signing in (password, then a TOTP code when the user enrolled one) and signing out."""

from __future__ import annotations

import base64
import hmac
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from civicshare.errors import AccountLocked, AuthenticationFailed
from civicshare.web.deps import (
    SIGNIN_COOKIE,
    CsrfFormDep,
    SessionDep,
    SignInNeeded,
    WebForm,
    check_csrf,
    cookie_options,
    get_node,
    load_session,
    read_form,
    refuse_csrf,
    session_cookie_name,
)
from civicshare.web.forms import FormErrors
from civicshare.web.templating import WEB, render

router = APIRouter()

SIGNIN_TOKEN_LIFE = 60 * 60  # seconds the sign-in form's token cookie lasts


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path inside the web UI, never another site."""
    if (not value or not value.startswith(f"{WEB}/") or value.startswith("//") or "\\" in value
            or value.startswith(f"{WEB}/sign-")):
        return f"{WEB}/"
    return value


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def _orgs(request: Request) -> list[tuple[str, str]]:
    return [(org.id, org.name) for org in get_node(request).organisations()]


def _signin_token(request: Request) -> str:
    """The sign-in form's double-submit token: the one in its cookie, or a new one."""
    token = request.cookies.get(SIGNIN_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    return base64.urlsafe_b64encode(get_node(request).rng(32)).decode("ascii").rstrip("=")


def _signin_page(request: Request, *, status: int = 200, errors: FormErrors | None = None,
                 values: dict[str, str] | None = None, next_path: str | None = None,
                 notice: str | None = None) -> Response:
    token = _signin_token(request)
    response = render(request, "signin/sign_in.html", status=status, errors=errors or FormErrors(),
                      values=values or {}, orgs=_orgs(request), signin_token=token,
                      next_path=safe_next(next_path), notice=notice)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=SIGNIN_TOKEN_LIFE, **cookie_options(request))
    return response


def _signed_in(request: Request) -> bool:
    try:
        load_session(request)
    except SignInNeeded:
        return False
    return True


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query name
    if await run_in_threadpool(_signed_in, request):
        return _redirect(safe_next(next))
    return await run_in_threadpool(_signin_page, request, next_path=next)


def _check_signin_token(request: Request, form: WebForm) -> None:
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    sent = form.get("signin_token", "")
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise refuse_csrf(request, None)


def _set_session_cookie(request: Request, response: Response, secret: str) -> None:
    # No max-age: the cookie ends with the browser; the server ends the session sooner (30 min idle, 12 h).
    response.set_cookie(session_cookie_name(request), secret, **cookie_options(request))


def _sign_in(request: Request, form: WebForm) -> Response:
    _check_signin_token(request, form)
    node = get_node(request)
    orgs = _orgs(request)
    errors = FormErrors()
    org_id = orgs[0][0] if len(orgs) == 1 else errors.choice(
        form, "org", [o for o, _ in orgs], missing="Select your organisation")
    name = errors.text(form, "name", missing="Enter your user name", max_length=200)
    password = form.get("password", "")
    if not password:
        errors.add("password", "Enter your password")
    values = {"org": org_id or "", "name": name}
    next_path = form.get("next")
    if errors:
        return _signin_page(request, status=400, errors=errors, values=values, next_path=next_path)
    assert org_id is not None
    try:
        attempt = node.signin.password(org_id, name, password)
    except AccountLocked as exc:
        errors.add("name", exc.message)
        return _signin_page(request, status=400, errors=errors, values=values, next_path=next_path)
    except AuthenticationFailed:
        errors.add("name", "The user name or password is wrong")
        return _signin_page(request, status=400, errors=errors, values=values, next_path=next_path)
    # A new session on every sign-in (no fixation); a session this browser held before is ended.
    node.signin.end(request.cookies.get(session_cookie_name(request), ""))
    secret, session = node.signin.start(attempt.actor)
    if session.totp_pending:
        target = f"{WEB}/sign-in/two-factor?next={quote(safe_next(next_path), safe='/')}"
    else:
        target = safe_next(next_path)
    response = _redirect(target)
    _set_session_cookie(request, response, secret)
    response.delete_cookie(SIGNIN_COOKIE, **cookie_options(request))
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_sign_in, request, form)


def _code_page(request: Request, csrf_token: str, *, status: int = 200, errors: FormErrors | None = None,
               next_path: str | None = None) -> Response:
    return render(request, "signin/two_factor.html", status=status, errors=errors or FormErrors(),
                  pending_csrf=csrf_token, next_path=safe_next(next_path))


def _pending(request: Request) -> Any:
    return load_session(request, totp_pending=True)


@router.get("/sign-in/two-factor")
async def two_factor_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    pending = await run_in_threadpool(_pending, request)
    return _code_page(request, pending.csrf_token, next_path=next)


def _two_factor(request: Request, form: WebForm) -> Response:
    pending = _pending(request)
    check_csrf(request, pending, form.get("csrf_token"))
    next_path = form.get("next")
    errors = FormErrors()
    code = "".join((form.get("code") or "").split())
    if not code:
        errors.add("code", "Enter the security code from your authenticator app")
    elif len(code) != 6 or not code.isdigit():
        errors.add("code", "Enter the security code as 6 digits, like 123456")
    if errors:
        return _code_page(request, pending.csrf_token, status=400, errors=errors, next_path=next_path)
    node = get_node(request)
    try:
        secret, _session = node.signin.totp(pending.cookie_secret, code)
    except AccountLocked as exc:
        # The pending sign-in is gone with the lock; start again from the password page.
        errors.add("name", exc.message)
        response = _signin_page(request, status=400, errors=errors, next_path=next_path)
        response.delete_cookie(session_cookie_name(request), **cookie_options(request))
        return response
    except AuthenticationFailed as exc:
        errors.add("code", exc.message.rstrip("."))
        return _code_page(request, pending.csrf_token, status=400, errors=errors, next_path=next_path)
    response = _redirect(safe_next(next_path))
    _set_session_cookie(request, response, secret)
    return response


@router.post("/sign-in/two-factor")
async def two_factor(request: Request) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_two_factor, request, form)


def _sign_out(request: Request, secret: str) -> Response:
    get_node(request).signin.end(secret)
    request.state.web_session = None
    response = _redirect(f"{WEB}/signed-out")
    response.delete_cookie(session_cookie_name(request), **cookie_options(request))
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, _form: CsrfFormDep) -> Response:
    return await run_in_threadpool(_sign_out, request, session.cookie_secret)


@router.post("/session/keep-alive")
async def keep_alive(session: SessionDep, _form: CsrfFormDep) -> Response:
    """"Stay signed in" in the timeout warning: loading the session already counted as activity."""
    return Response(status_code=204)


@router.get("/signed-out")
async def signed_out(request: Request) -> Response:
    return render(request, "signin/signed_out.html")
