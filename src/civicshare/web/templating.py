"""Rendering pages: the Jinja2 environment, the context every page gets, and the display filters."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from civicshare.access import ROLE_PERMISSIONS, Permission, Role
from civicshare.errors import CivicshareError
from civicshare.signin import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT
from civicshare.web.forms import FormErrors

SERVICE_NAME = "civicshare"
WEB = "/web"  # where the web UI is mounted on the node's app
TEMPLATES = Path(__file__).parent / "templates"

# The one inline script: govuk-frontend's check that the browser supports its JavaScript. The CSP allows it
# by this hash, so the text here and in base.html must stay byte for byte the same.
SUPPORTED_SNIPPET = ("document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype "
                     "? ' govuk-frontend-supported' : '');")
SUPPORTED_SNIPPET_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SUPPORTED_SNIPPET.encode()).digest()).decode()

try:
    # Council staff read times in UK local time; stored times are UTC.
    LOCAL_ZONE: Any = ZoneInfo("Europe/London")
except ZoneInfoNotFoundError:  # pragma: no cover - a system without tzdata
    LOCAL_ZONE = UTC


@dataclass(frozen=True)
class NavItem:
    key: str
    text: str
    href: str
    permission: Permission | None


# The service navigation; each item shows only to roles holding its permission.
NAVIGATION = (
    NavItem("dashboard", "Dashboard", f"{WEB}/", None),
    NavItem("holdings", "Holdings", f"{WEB}/holdings", Permission.HOLDINGS_READ),
    NavItem("share", "Share", f"{WEB}/share", Permission.TRANSFERS_SHARE),
    NavItem("inbox", "Inbox", f"{WEB}/inbox", Permission.HOLDINGS_READ),
    NavItem("transfers", "Transfers", f"{WEB}/transfers", Permission.TRANSFERS_READ),
    NavItem("agreements", "Agreements", f"{WEB}/agreements", Permission.AGREEMENTS_READ),
    NavItem("audit", "Audit log", f"{WEB}/audit", Permission.AUDIT_READ),
    NavItem("keys", "Keys", f"{WEB}/keys", Permission.KEYS_READ),
)


def navigation_for(role: Role) -> list[NavItem]:
    allowed = ROLE_PERMISSIONS[role]
    return [item for item in NAVIGATION if item.permission is None or item.permission in allowed]


def when(moment: datetime | None, empty: str = "Not recorded") -> str:
    """22 Nov 2026 at 10:14, in UK local time."""
    if moment is None:
        return empty
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # SQLite returns UTC without a zone
    local = moment.astimezone(LOCAL_ZONE)
    return f"{local.day} {local:%b %Y} at {local:%H:%M}"


def day(moment: date | datetime | None, empty: str = "Not recorded") -> str:
    """22 November 2026."""
    if moment is None:
        return empty
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(LOCAL_ZONE)
    return f"{moment.day} {moment:%B %Y}"


def size_in_words(count: int | None) -> str:
    """1.2 MB: decimal units, as people read file sizes."""
    if count is None:
        return "Unknown"
    if count < 1000:
        return "1 byte" if count == 1 else f"{count} bytes"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def number(value: int | float | None) -> str:
    """12,345."""
    if value is None:
        return "Unknown"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml", "svg"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["day"] = day
    env.filters["bytes"] = size_in_words
    env.filters["number"] = number
    env.globals["service_name"] = SERVICE_NAME
    env.globals["web"] = WEB
    env.globals["supported_snippet"] = SUPPORTED_SNIPPET
    return env


environment = _environment()


def org_name_for(request: Request, org_id: str | None) -> str | None:
    """The organisation's name; before sign-in, the name of the one organisation a node hosts, if one."""
    node = request.app.state.node
    try:
        if org_id is not None:
            return str(node.organisation(org_id).name)
        orgs = node.organisations()
    except CivicshareError:
        return None
    return str(orgs[0].name) if len(orgs) == 1 else None


def _seconds_left(request: Request, session: Any) -> int:
    if session is None:
        return 0
    now = request.app.state.node.clock()
    return max(0, min(int((session.core.expires_at - now).total_seconds()), int(ABSOLUTE_TIMEOUT.total_seconds())))


def page_context(request: Request) -> dict[str, Any]:
    """What every template may use: the session (or None), its CSRF token, the navigation, names."""
    session = getattr(request.state, "web_session", None)
    return {
        "request": request,
        "request_path": request.url.path,
        "session": session,
        "csrf_token": session.csrf_token if session is not None else "",
        "nav": navigation_for(session.actor.role) if session is not None else [],
        "org_name": org_name_for(request, session.org_id if session is not None else None),
        "service_name": SERVICE_NAME,
        "active_nav": None,
        "errors": FormErrors(),
        # For the warning before a session times out (static/civicshare.js): seconds left, idle and in all.
        "session_idle_seconds": int(IDLE_TIMEOUT.total_seconds()),
        "session_left_seconds": _seconds_left(request, session),
    }


def render_text(request: Request, template: str, **context: Any) -> str:
    return environment.get_template(template).render({**page_context(request), **context})


def render(request: Request, template: str, status: int = 200, *, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """Render a page. ``context`` adds to (or overrides) the common context from ``page_context``."""
    return HTMLResponse(render_text(request, template, **context), status_code=status, headers=headers)
