"""The web UI's refusals, over plain HTTP against a real serving node hosting two organisations.

Every route the web app has is listed below with the permission it needs, so a new page that is not
classified here fails the first test. Then: without a session every page and form sends the browser
to sign in; a role without the permission gets the 403 page and nothing happens; a form without its
CSRF token (or with another session's) is refused with 403 and audited; a user of one organisation
never sees the other's holdings, transfers, agreements, keys or audit entries, and their ids give 404.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from civicshare.access import ROLE_PERMISSIONS, Permission, Role
from civicshare.web.deps import CSRF_MESSAGE
from civicshare.web.pages import include_pages
from tests.web.estate import NORTH, SOUTH, TITLES, Estate, build, user_name
from tests.web.webnodes import PASSWORD, ROLES, WebClient

P = Permission
PUBLIC, SIGNED_IN = "public", "signed in"
# Every route of the web app and what it needs: PUBLIC, SIGNED_IN (any role), or a permission.
ROUTES: dict[tuple[str, str], str | Permission] = {
    ("GET", "/sign-in"): PUBLIC, ("POST", "/sign-in"): PUBLIC,
    ("GET", "/sign-in/two-factor"): PUBLIC, ("POST", "/sign-in/two-factor"): PUBLIC,
    ("GET", "/signed-out"): PUBLIC, ("GET", "/accessibility"): PUBLIC, ("GET", "/cookies"): PUBLIC,
    ("POST", "/sign-out"): SIGNED_IN, ("POST", "/session/keep-alive"): SIGNED_IN, ("GET", "/"): SIGNED_IN,
    ("GET", "/holdings"): P.HOLDINGS_READ, ("GET", "/holdings/{holding_id}"): P.HOLDINGS_READ,
    ("GET", "/holdings/{holding_id}/export"): P.HOLDINGS_EXPORT,
    ("POST", "/holdings/{holding_id}/export"): P.HOLDINGS_EXPORT,
    ("GET", "/holdings/{holding_id}/shred"): P.HOLDINGS_SHRED,
    ("POST", "/holdings/{holding_id}/shred"): P.HOLDINGS_SHRED,
    ("GET", "/holdings/import"): P.HOLDINGS_IMPORT, ("GET", "/holdings/import/dataset"): P.HOLDINGS_IMPORT,
    ("POST", "/holdings/import/dataset"): P.HOLDINGS_IMPORT,
    ("GET", "/holdings/import/document"): P.HOLDINGS_IMPORT,
    ("POST", "/holdings/import/document"): P.HOLDINGS_IMPORT,
    ("GET", "/share"): P.TRANSFERS_SHARE, ("POST", "/share/preview"): P.TRANSFERS_SHARE,
    ("POST", "/share/send"): P.TRANSFERS_SHARE,
    # What arrived is part of the holdings: the core lets everyone who reads holdings see the inbox.
    ("GET", "/inbox"): P.HOLDINGS_READ, ("GET", "/inbox/{transfer_id}"): P.HOLDINGS_READ,
    ("GET", "/transfers"): P.TRANSFERS_READ, ("GET", "/transfers/{transfer_id}"): P.TRANSFERS_READ,
    ("GET", "/transfers/{transfer_id}/status.json"): P.TRANSFERS_READ,
    ("GET", "/agreements"): P.AGREEMENTS_READ, ("GET", "/agreements.csv"): P.AGREEMENTS_READ,
    ("GET", "/agreements/{agreement_id}"): P.AGREEMENTS_READ,
    ("GET", "/agreements/new"): P.AGREEMENTS_MANAGE, ("POST", "/agreements/new"): P.AGREEMENTS_MANAGE,
    ("POST", "/agreements"): P.AGREEMENTS_MANAGE,
    ("POST", "/agreements/{agreement_id}/propose"): P.AGREEMENTS_MANAGE,
    ("POST", "/agreements/{agreement_id}/sign"): P.AGREEMENTS_SIGN,
    ("GET", "/agreements/{agreement_id}/revoke"): P.AGREEMENTS_MANAGE,
    ("POST", "/agreements/{agreement_id}/revoke"): P.AGREEMENTS_MANAGE,
    ("GET", "/audit"): P.AUDIT_READ, ("POST", "/audit/verify"): P.AUDIT_READ,
    ("GET", "/keys"): P.KEYS_READ,
}
# A form each POST would accept from someone allowed to send it (so a refusal is the role's or the token's).
FORMS: dict[str, dict[str, str]] = {
    "/holdings/{holding_id}/export": {"format": "original"},
    "/holdings/{holding_id}/shred": {"confirm": "yes"},
    "/share/preview": {"holding": "{holding_id}", "to": NORTH, "agreement": "{agreement_id}"},
    "/share/send": {"holding": "{holding_id}", "to": NORTH, "agreement": "{agreement_id}"},
    "/agreements/new": {"recipient": NORTH, "covers": "documents", "dataset": "", "fields": ""},
    "/agreements": {"text": "purpose: refused before it is read"},
    "/agreements/{agreement_id}/propose": {"version": "1"},
    "/agreements/{agreement_id}/sign": {"version": "1"},
    "/agreements/{agreement_id}/revoke": {"version": "1", "reason": "a test that must be refused"},
    "/audit/verify": {},
    "/sign-out": {},
    "/session/keep-alive": {},
}
UPLOADS = {"/holdings/import/dataset": "dataset", "/holdings/import/document": "document"}


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    built = build(tmp_path_factory.mktemp("estate"))
    try:
        yield built
    finally:
        built.node.close()


def _walk(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # newer FastAPI keeps included routers as they are
        if inner is not None:
            yield from _walk(list(inner.routes))


def web_routes() -> set[tuple[str, str]]:
    web = FastAPI()
    include_pages(web)
    return {(method, route.path) for route in _walk(list(web.routes)) for method in route.methods
            if method in ("GET", "POST")}


def fill(path: str, estate: Estate, org: str = SOUTH) -> str:
    return path.format(holding_id=estate.holding[org], transfer_id=estate.transfer, agreement_id=estate.agreement)


@contextlib.contextmanager
def client(estate: Estate, org: str, role: str) -> Iterator[WebClient]:
    """A signed-in browser (no JavaScript) of ``org``'s user with ``role``."""
    with WebClient(estate.node) as web:
        yield web.signed_in(user_name(org, role), PASSWORD, org=org)


def send(web: WebClient, method: str, path: str, estate: Estate, csrf: str | None) -> httpx.Response:
    """The route's request, as the page's own form would send it, with ``csrf`` as its token."""
    url = "/web" + fill(path, estate)
    if method == "GET":
        return web.get(url)
    data = {k: fill(v, estate) for k, v in FORMS.get(path, {}).items()}
    if csrf is not None:
        data["csrf_token"] = csrf
    if path in UPLOADS:
        return web.post(url, data=data, files={UPLOADS[path]: ("people.csv", b"name\nAda\n", "text/csv")})
    return web.post(url, data=data)


def assert_sign_in(answer: httpx.Response, what: str) -> None:
    assert answer.status_code == 303, f"{what} answered {answer.status_code}, not a redirect to sign in"
    assert answer.headers["location"].startswith("/web/sign-in"), f"{what} sent to {answer.headers['location']}"


def test_every_web_route_is_classified_here() -> None:
    found = web_routes()
    assert found - set(ROUTES) == set(), "classify these new routes in ROUTES"
    assert set(ROUTES) - found == set(), "these routes are gone from the web app"


def test_without_a_session_every_page_and_form_sends_to_sign_in(estate: Estate) -> None:
    before = estate.exists(SOUTH, estate.holding[SOUTH])
    with WebClient(estate.node) as anonymous:
        for (method, path), needs in sorted(ROUTES.items()):
            if needs == PUBLIC:
                continue
            answer = send(anonymous, method, path, estate, csrf="not-a-session-token")
            assert_sign_in(answer, f"{method} {path}")
            if method == "GET" and not path.endswith(".json"):
                back = parse_qs(urlsplit(answer.headers["location"]).query).get("next")
                assert back == ["/web" + fill(path, estate)], f"{path}: after signing in, come back here, not {back}"
    assert before and estate.exists(SOUTH, estate.holding[SOUTH])


@pytest.mark.parametrize("role", ROLES)
def test_a_role_without_the_permission_gets_403_and_nothing_happens(estate: Estate, role: str) -> None:
    allowed = ROLE_PERMISSIONS[Role(role)]
    refused = [(m, p) for (m, p), needs in sorted(ROUTES.items()) if isinstance(needs, Permission)
               and needs not in allowed]
    with client(estate, SOUTH, role) as web:
        token = web.csrf()
        for method, path in refused:
            answer = send(web, method, path, estate, csrf=token)
            assert answer.status_code == 403, f"{role}: {method} {path} answered {answer.status_code}"
            if path.endswith(".json"):
                continue
            assert "You cannot do this" in answer.text and "text/html" in answer.headers["content-type"]
        # And the pages the role may see open (a refusal above is not a refusal of everything).
        for (method, path), needs in sorted(ROUTES.items()):
            if (method == "GET" and needs != PUBLIC and (needs == SIGNED_IN or needs in allowed)
                    and path != "/inbox/{transfer_id}"):  # South Fen sent it: not in its own inbox
                answer = send(web, method, path, estate, csrf=None)
                assert answer.status_code == 200, f"{role}: {method} {path} answered {answer.status_code}"
    assert estate.exists(SOUTH, estate.holding[SOUTH]), "a refused shred destroyed the holding"
    assert estate.api(SOUTH, "admin", "GET", f"/v1/agreements/{estate.agreement}")["state"] == "active"


@pytest.mark.parametrize("token", ["missing", "another session's"])
def test_a_form_without_its_csrf_token_is_refused_and_audited(estate: Estate, token: str) -> None:
    users = [user_name(SOUTH, "admin"), user_name(SOUTH, "dpo")]
    seen = {e["index"] for user in users for e in estate.audit(SOUTH, user)}
    other = None
    if token != "missing":
        with client(estate, SOUTH, "records_manager") as web:
            other = web.csrf()
    with client(estate, SOUTH, "admin") as admin, client(estate, SOUTH, "dpo") as dpo:
        posts = [(p, dpo if needs == P.AGREEMENTS_SIGN else admin) for (m, p), needs in sorted(ROUTES.items())
                 if m == "POST" and needs != PUBLIC]
        for path, web in posts:
            answer = send(web, "POST", path, estate, csrf=other)
            assert answer.status_code == 403, f"POST {path} without its token answered {answer.status_code}"
            assert CSRF_MESSAGE.split(".")[0] in answer.text, f"POST {path}: not the CSRF refusal page"
        assert admin.get("/web/").status_code == 200, "the refused sign-out must not end the session"
    refusals = [e for user in users for e in estate.audit(SOUTH, user)
                if e["action"] == "web.csrf_refused" and e["index"] not in seen]
    paths = {e["details"]["path"] for e in refusals}
    assert {"/web" + fill(p, estate) for p, _web in posts} <= paths, "every refused form is in the audit log"
    assert estate.exists(SOUTH, estate.holding[SOUTH])
    assert estate.api(SOUTH, "admin", "GET", f"/v1/agreements/{estate.agreement}")["state"] == "active"


def test_sign_in_forms_need_their_own_token(estate: Estate) -> None:
    with WebClient(estate.node) as web:
        web.get("/web/sign-in")
        answer = web.post("/web/sign-in", data={"org": SOUTH, "name": user_name(SOUTH, "admin"),
                                                "password": PASSWORD, "next": "/web/"})
        assert answer.status_code == 403 and "civicshare_session" not in web.cookies
        assert web.post("/web/sign-in/two-factor", data={"code": "123456"}).status_code in (303, 403)


def _entries(page: str) -> str:
    """The audit page's table of entries (empty when none matched)."""
    return page.split('id="audit-entries"', 1)[1] if 'id="audit-entries"' in page else ""


def _only_own_refusals(page: str, theirs: set[str], role: str) -> None:
    """North Wold's log names South Fen's ids only in North Wold's own refused attempts to open them."""
    for row in _entries(page).split("<tr")[1:]:
        if theirs & _ids(row):
            assert "Refused" in row and "not_found" in row, f"{role} at {NORTH} sees South Fen's log: {row}"


def _ids(text: str) -> set[str]:
    return set(re.findall(r"\b(?:h|t)_[a-z0-9]{8,}\b|\bDSA-\d{4}-\d{4}\b", text))


def test_one_organisation_never_sees_the_others_data(estate: Estate) -> None:
    theirs = {estate.holding[SOUTH], estate.draft}
    for role in ROLES:
        with client(estate, NORTH, role) as web:
            for path in ("/web/", "/web/holdings", "/web/transfers", "/web/inbox", "/web/agreements",
                         "/web/agreements.csv", "/web/audit", "/web/keys"):
                page = web.get(path)
                if page.status_code == 403:
                    continue
                assert page.status_code == 200, f"{role}: {path} answered {page.status_code}"
                if path == "/web/audit":
                    _only_own_refusals(page.text, theirs, role)
                    continue
                assert not theirs & _ids(page.text), f"{role} at {NORTH} sees {theirs & _ids(page.text)} on {path}"
                assert TITLES[SOUTH] not in page.text, f"{role} at {NORTH} sees South Fen's document on {path}"
            allowed = ROLE_PERMISSIONS[Role(role)]
            for route in ("/holdings/{holding_id}", "/holdings/{holding_id}/export", "/holdings/{holding_id}/shred",
                          "/agreements/{agreement_id}", "/transfers/{transfer_id}",
                          "/transfers/{transfer_id}/status.json"):
                path = route.format(holding_id=estate.holding[SOUTH], agreement_id=estate.draft,
                                    transfer_id=estate.transfer)
                # 404 as for an id that does not exist; 403 first only where the role may not open such pages.
                expected = 404 if ROUTES["GET", route] in allowed else 403
                answer = web.get("/web" + path)
                assert answer.status_code == expected, \
                    f"{role} at {NORTH}: {path} of South Fen answered {answer.status_code}, not {expected}"
            page = web.get(f"/web/audit?object={estate.holding[SOUTH]}")
            if page.status_code != 403:  # the filter's box repeats the id, the entries must not
                assert page.status_code == 200
                _only_own_refusals(page.text, theirs, role)
                ours = web.get(f"/web/audit?object={estate.holding[NORTH]}").text
                assert estate.holding[NORTH] in _entries(ours), "the filter finds North Wold's own entries"
            assert estate.holding[NORTH] in web.get("/web/holdings").text, "North Wold's own holding is listed"
    # Shredding South Fen's holding from North Wold: a 404 however the form is filled in.
    with client(estate, NORTH, "admin") as web:
        answer = web.post(f"/web/holdings/{estate.holding[SOUTH]}/shred", data={"confirm": "yes",
                                                                                  "csrf_token": web.csrf()})
        assert answer.status_code == 404
    assert estate.exists(SOUTH, estate.holding[SOUTH])
    # North Wold does see what South Fen sent it, in its inbox: that is the agreement working.
    with client(estate, NORTH, "records_manager") as web:
        assert estate.transfer in web.get("/web/inbox").text


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(estate: Estate) -> None:
    name = user_name(NORTH, "caseworker")
    with WebClient(estate.node) as web:
        for attempt in range(5):
            answer = web.sign_in(name, "not the password at all", org=NORTH)
            assert answer.status_code == 400, f"attempt {attempt + 1} answered {answer.status_code}"
        locked = web.sign_in(name, PASSWORD, org=NORTH)
        assert locked.status_code == 400 and "This account is locked until" in locked.text
        assert "civicshare_session" not in web.cookies
    actions = [e["action"] for e in estate.audit(NORTH, name)]
    assert actions.count("login.failed") >= 4 and "login.locked" in actions
    estate.node.run("user", "unlock", name, "--org", NORTH)
    with client(estate, NORTH, "caseworker"):
        pass


def test_pages_carry_the_security_headers_and_the_cookie_its_flags(estate: Estate) -> None:
    with WebClient(estate.node) as web:
        answer = web.sign_in(user_name(NORTH, "dpo"), org=NORTH)
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("civicshare_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags, cookie
        page = web.get("/web/")
        csp = page.headers["content-security-policy"]
        for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
                          "frame-ancestors 'none'", "style-src 'self'"):
            assert directive in csp, f"{directive} missing from {csp}"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "no-store" in page.headers["cache-control"]

