"""The web skeleton against a real node: sign-in and sign-out, sessions, CSRF, security headers, HTML errors.

FastAPI's TestClient drives the node's whole app (API with the web UI mounted at /web) in process, over the
two-organisation test node on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from fastapi.testclient import TestClient

from civicshare.access import Actor, Role
from civicshare.api.app import create_app
from civicshare.node import Node

NORTH, SOUTH = "north-wold", "south-fen"
PASSWORD = "a long enough password"
CSRF_MESSAGE = "This form has expired or was not sent from civicshare."


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    node.add_user(NORTH, "alice", Role.RECORDS_MANAGER, PASSWORD)
    node.add_user(NORTH, "carol", Role.CASEWORKER, PASSWORD)
    node.add_user(SOUTH, "alice", Role.ADMIN, "south fen's own password")
    with TestClient(create_app(node), follow_redirects=False) as c:
        yield c


def set_cookies(response) -> dict[str, SimpleCookie]:
    """Each Set-Cookie header of a response, parsed, by cookie name."""
    parsed: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            parsed[name] = cookie
    return parsed


def field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name} in the page"
    return match.group(1)


def sign_in(client: TestClient, name: str = "alice", password: str = PASSWORD, org: str = NORTH,
            next_path: str = "/web/"):
    page = client.get("/web/sign-in")
    assert page.status_code == 200
    return client.post("/web/sign-in", data={"signin_token": field(page.text, "signin_token"), "org": org,
                                             "name": name, "password": password, "next": next_path})


def assert_html(response, status: int) -> str:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    assert response.text.lstrip().startswith("<!DOCTYPE html>")
    return response.text


def test_sign_in_page_renders_with_the_govuk_template_and_a_strict_csp(client: TestClient) -> None:
    response = client.get("/web/sign-in")
    html = assert_html(response, 200)
    assert "<title>Sign in – civicshare</title>" in html  # two organisations: no single name to show
    assert 'class="govuk-template__body"' in html and 'class="govuk-skip-link"' in html
    assert 'class="govuk-service-navigation"' in html and 'class="govuk-footer"' in html
    assert 'href="/web/accessibility"' in html and "govuk-phase-banner" in html
    # Both organisations the node hosts are offered; no navigation before sign-in.
    assert '<option value="north-wold">North Wold District Council</option>' in html
    assert '<option value="south-fen">South Fen Borough Council</option>' in html
    assert 'href="/web/holdings"' not in html
    # The one inline script is allowed by its hash, and nothing else inline is.
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = response.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}'" in csp
    assert "style-src 'self';" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "style=" not in html and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain http here
    token_cookie = set_cookies(response)["civicshare_signin"]["civicshare_signin"]
    assert token_cookie["httponly"] and token_cookie["samesite"].lower() == "strict"


def test_sign_in_sets_an_httponly_samesite_strict_session_cookie_and_is_audited(client: TestClient,
                                                                                  node: Node) -> None:
    response = sign_in(client, next_path="/web/accessibility")
    assert response.status_code == 303
    assert response.headers["location"] == "/web/accessibility"
    cookie = set_cookies(response)["civicshare_session"]["civicshare_session"]
    assert cookie["httponly"] is True and cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
    assert not cookie["secure"] and not cookie["max-age"]  # plain http in this test; ends with the browser
    page = assert_html(client.get("/web/"), 200)
    assert "Signed in as alice" in page and 'href="/web/holdings"' in page and 'href="/web/share"' in page
    assert 'href="/web/keys"' in page  # records managers read the key register
    entries = node.audit_entries(Actor.operator(NORTH), by="alice")
    assert [(e.action, e.details.get("method")) for e in entries] == [("login", "password")]
    # The other organisation's alice is someone else: north-wold's password does not sign her in.
    client.cookies.clear()
    assert sign_in(client, org=SOUTH).status_code == 400


def test_over_https_the_cookie_is_secure_and_host_prefixed(node: Node) -> None:
    node.add_user(NORTH, "alice", Role.CASEWORKER, PASSWORD)
    with TestClient(create_app(node), base_url="https://testserver", follow_redirects=False) as client:
        response = sign_in(client)
        assert response.status_code == 303
        cookie = set_cookies(response)["__Host-civicshare"]["__Host-civicshare"]
        assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        page = assert_html(client.get("/web/"), 200)
        # A caseworker sees only what their role may open.
        assert 'href="/web/holdings"' in page and 'href="/web/share"' not in page and 'href="/web/audit"' not in page


def test_a_wrong_password_shows_the_govuk_error_summary(client: TestClient, node: Node) -> None:
    html = assert_html(sign_in(client, password="not the password at all"), 400)
    assert "<title>Error: Sign in – civicshare</title>" in html
    assert 'class="govuk-error-summary"' in html
    assert '<a href="#name">The user name or password is wrong</a>' in html
    assert 'id="name-error" class="govuk-error-message"' in html and 'aria-describedby="name-error"' in html
    assert "civicshare_session" not in client.cookies
    empty = assert_html(sign_in(client, name="", password=""), 400)
    assert '<a href="#name">Enter your user name</a>' in empty
    assert '<a href="#password">Enter your password</a>' in empty
    entries = node.audit_entries(Actor.operator(NORTH), by="alice")
    assert [e.action for e in entries] == ["login.failed"]


def test_pages_without_a_session_redirect_to_sign_in(client: TestClient) -> None:
    response = client.get("/web/?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/web/sign-in?next=/web/%3Fx%3D1"
    assert client.get("/").headers["location"] == "/web/"
    # A made-up session cookie is no session either.
    client.cookies.set("civicshare_session", "made-up")
    assert client.get("/web/").status_code == 303


def test_after_sign_in_the_next_page_is_only_ever_inside_the_web_ui(client: TestClient) -> None:
    for evil in ("//evil.example/web/", "https://evil.example/", "/v1/holdings", "/web\\..\\x"):
        client.cookies.clear()
        response = sign_in(client, next_path=evil)
        assert response.status_code == 303 and response.headers["location"] == "/web/", evil


def test_posts_without_the_csrf_token_are_refused_and_audited(client: TestClient, node: Node) -> None:
    assert sign_in(client).status_code == 303
    page = client.get("/web/")
    token = field(page.text, "csrf_token")
    for data in ({}, {"csrf_token": "wrong"}, {"csrf_token": token[:-1]}):
        html = assert_html(client.post("/web/sign-out", data=data), 403)
        assert CSRF_MESSAGE in html
    refused = [e for e in node.audit_entries(Actor.operator(NORTH), by="alice") if e.action == "web.csrf_refused"]
    assert len(refused) == 3 and refused[0].outcome == "refused" and refused[0].details["path"] == "/web/sign-out"
    assert client.get("/web/").status_code == 200  # still signed in
    # The sign-in form has its own double-submit token: without it, no sign-in.
    client.cookies.clear()
    html = assert_html(client.post("/web/sign-in", data={"name": "alice", "password": PASSWORD, "org": NORTH}), 403)
    assert CSRF_MESSAGE in html
    client.get("/web/sign-in")
    refused_again = client.post("/web/sign-in", data={"signin_token": "forged", "name": "alice",
                                                       "password": PASSWORD, "org": NORTH})
    assert refused_again.status_code == 403 and "civicshare_session" not in client.cookies


def test_sign_out_ends_the_session_on_the_server(client: TestClient, node: Node) -> None:
    assert sign_in(client).status_code == 303
    secret = client.cookies["civicshare_session"]
    token = field(client.get("/web/").text, "csrf_token")
    response = client.post("/web/sign-out", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/web/signed-out"
    assert "You have signed out" in assert_html(client.get("/web/signed-out"), 200)
    # Even a copy of the old cookie is worthless now.
    client.cookies.set("civicshare_session", secret)
    assert client.get("/web/").status_code == 303
    assert "logout" in [e.action for e in node.audit_entries(Actor.operator(NORTH), by="alice")]


def test_error_pages_are_html_and_the_api_keeps_json(client: TestClient) -> None:
    html = assert_html(client.get("/web/no-such-page"), 404)
    assert "Page not found" in html
    assert "This page cannot do that" in assert_html(client.get("/web/sign-out"), 405)
    assert client.get("/web/no-such-page").headers["content-security-policy"]
    api = client.get("/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/json")


def test_totp_users_finish_signing_in_with_a_code(client: TestClient, node: Node) -> None:
    secret, _uri = node.signin.enrol_totp(Actor.operator(NORTH), "carol")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    response = sign_in(client, name="carol", next_path="/web/cookies")
    assert response.status_code == 303
    assert response.headers["location"] == "/web/sign-in/two-factor?next=/web/cookies"
    pending = client.cookies["civicshare_session"]
    # Half signed in is not signed in: pages send the user back to the code.
    assert client.get("/web/").headers["location"] == "/web/sign-in/two-factor"
    form = assert_html(client.get("/web/sign-in/two-factor?next=/web/cookies"), 200)
    assert "Enter your security code" in form and 'href="/web/holdings"' not in form
    token = field(form, "csrf_token")
    wrong = client.post("/web/sign-in/two-factor", data={"csrf_token": token, "code": "12345", "next": "/web/"})
    assert '<a href="#code">Enter the security code as 6 digits, like 123456</a>' in assert_html(wrong, 400)
    assert assert_html(client.post("/web/sign-in/two-factor", data={"code": "123456"}), 403)
    code = TOTP(key, 6, SHA1(), 30, enforce_key_length=False).generate(node.clock().timestamp()).decode()
    done = client.post("/web/sign-in/two-factor", data={"csrf_token": token, "code": code, "next": "/web/cookies"})
    assert done.status_code == 303 and done.headers["location"] == "/web/cookies"
    assert client.cookies["civicshare_session"] != pending  # a new secret for the full session
    assert "Signed in as carol" in assert_html(client.get("/web/"), 200)


def test_an_unexpected_error_is_a_generic_html_page_without_the_traceback(node: Node) -> None:
    app = create_app(node)
    web = next(route.app for route in app.routes if getattr(route, "name", None) == "web")

    @web.get("/test-breaks")
    def breaks() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, follow_redirects=False) as client:
        html = assert_html(client.get("/web/test-breaks"), 500)
    assert "Sorry, there is a problem with the service" in html and "secret internal detail" not in html


def test_signed_in_pages_carry_the_timeout_warning_and_keep_alive_needs_the_csrf_token(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    page = assert_html(client.get("/web/accessibility"), 200)
    assert 'data-idle-seconds="1800"' in page and "You will be signed out soon" in page
    left = int(re.search(r'data-left-seconds="(\d+)"', page).group(1))
    assert 11 * 3600 < left <= 12 * 3600
    assert client.post("/web/session/keep-alive", data={}).status_code == 403
    token = field(page, "csrf_token")
    assert client.post("/web/session/keep-alive", data={"csrf_token": token}).status_code == 204
    client.cookies.clear()
    assert "You will be signed out soon" not in assert_html(client.get("/web/accessibility"), 200)
    assert client.post("/web/session/keep-alive", data={"csrf_token": token}).status_code == 303
