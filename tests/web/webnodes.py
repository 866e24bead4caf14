"""Real serving nodes for the web tests, users who sign in with passwords, and a plain-HTTP web client.

Users are made with the real command (``user add NAME --role R --password-stdin``); the client
signs in through the real sign-in form (its double-submit token, then the session cookie) and reads
each form's CSRF token from the page, as a browser would.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.nodes import DPO_NAME, NodeError, NodeHome

PASSWORD = "web tests only, not a secret"  # noqa: S105 - a test fixture's password
ROLES = ("admin", "dpo", "records_manager", "caseworker")
SERVE = ("--deliver-every", "0.2", "--retry-base", "0.2")
_HIDDEN = r'<input[^>]*name="{name}"[^>]*value="([^"]*)"'


def add_web_user(node: NodeHome, name: str, role: str, password: str = PASSWORD, org: str | None = None) -> str:
    """``civicshare user add NAME --role ROLE --password-stdin`` (a password for the web sign-in); returns the
    user's API token, for set-up through the API."""
    args = ["user", "add", name, "--role", role, "--password-stdin", "--json"] + (["--org", org] if org else [])
    proc = subprocess.run([sys.executable, "-m", "civicshare", *args], env=node.env, input=password + "\n",
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise NodeError(f"civicshare {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return str(json.loads(proc.stdout)["token"])


def role_user(role: str, org: str | None = None) -> str:
    """The name of the test user with ``role`` (in ``org`` when the node hosts several)."""
    return f"{org}-{role}".replace("_", "-") if org else f"web-{role}".replace("_", "-")


def add_role_users(node: NodeHome, org: str | None = None) -> None:
    for role in ROLES:
        add_web_user(node, role_user(role, org), role, org=org)


def hidden(page: str, name: str) -> str:
    """The value of the page's first hidden input ``name`` (the forms' tokens)."""
    found = re.search(_HIDDEN.format(name=re.escape(name)), page)
    if not found:
        raise NodeError(f"no {name} in the page:\n{page[:2000]}")
    return html.unescape(found.group(1))


class WebClient(httpx.Client):
    """One person's browser without JavaScript: cookies kept, redirects not followed unless asked."""

    def __init__(self, where: NodeHome | str, **kwargs: Any) -> None:
        super().__init__(base_url=where if isinstance(where, str) else where.base_url, timeout=60, **kwargs)

    def sign_in(self, name: str, password: str = PASSWORD, org: str | None = None) -> httpx.Response:
        page = self.get("/web/sign-in")
        page.raise_for_status()
        form = {"signin_token": hidden(page.text, "signin_token"), "name": name, "password": password,
                "next": "/web/"}
        if org:
            form["org"] = org
        return self.post("/web/sign-in", data=form)

    def signed_in(self, name: str, password: str = PASSWORD, org: str | None = None) -> WebClient:
        answer = self.sign_in(name, password, org)
        if answer.status_code != 303 or answer.headers["location"] != "/web/":
            raise NodeError(f"signing in as {name} answered {answer.status_code}: {answer.text[:2000]}")
        return self

    def csrf(self, path: str = "/web/") -> str:
        """The session's CSRF token, from a form on ``path``."""
        page = self.get(path)
        if page.status_code != 200:
            raise NodeError(f"GET {path} answered {page.status_code}")
        return hidden(page.text, "csrf_token")


def _each(pool: ThreadPoolExecutor, work: Callable[..., Any], *calls: tuple[Any, ...]) -> list[Any]:
    """Run ``work(*call)`` for every call at once (each is a CLI process), and wait for them all."""
    return list(pool.map(lambda call: work(*call), calls))


def _user(node: NodeHome, name: str, role: str, password: bool) -> None:
    if password:
        add_web_user(node, name, role)
    else:
        node.tokens[name] = node.add_user(name, role)


@contextlib.contextmanager
def web_pair(root: Path) -> Iterator[tuple[NodeHome, NodeHome]]:
    """north-wold and south-fen serving (SQLite), pinning each other; a records manager with a password at
    each, and the users ``agree`` works through already made. As ``serving_pair``, with the CLI calls of
    the two nodes run side by side: set-up is most of a browser test's time."""
    with ThreadPoolExecutor(6) as pool:
        north, south = _each(pool, NodeHome.create, (root / "north", "north-wold", "North Wold District Council"),
                             (root / "south", "south-fen", "South Fen Borough Council"))
        try:
            cards = _each(pool, NodeHome.card, (north,), (south,))
            _each(pool, NodeHome.add_partner, (north, cards[1]), (south, cards[0]))
            _each(pool, _user, *[(node, *user) for node in (north, south) for user in (
                (role_user("records_manager"), "records_manager", True),
                ("agree-records-manager", "records_manager", False), (DPO_NAME, "dpo", False))])
            _each(pool, lambda node: node.start(*SERVE), (north,), (south,))
            yield north, south
        finally:
            north.close()
            south.close()
