"""The browser harness itself: chromium loads a loopback page under a strict CSP, axe-core finds what it must.

If these fail, the journey's accessibility assertions mean nothing, so they run first and fast.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.web.browser import Recorder, axe_violations

CSP = ("default-src 'self'; script-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
GOOD = b"""<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Harness - civicshare</title>
<link rel="icon" href="data:,"></head>
<body><main><h1>Harness</h1><p>A plain page.</p>
<form method="post" action="/"><label for="n">Name</label><input id="n" name="n" type="text">
<button type="submit">Save</button></form></main></body></html>"""
# An image without a text alternative, and an input without a label: two WCAG A failures.
BAD = b"""<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<input type="text" name="x"></main></body></html>"""
INLINE = b"""<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Inline</title></head>
<body><main><h1>Inline</h1><script>document.title = 'ran'</script></main></body></html>"""


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = {"/good": GOOD, "/bad": BAD, "/inline": INLINE}.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_and_axe_pass_a_good_page_under_csp(page: Any, site: str, recorder: Recorder) -> None:
    page.goto(f"{site}/good")
    assert page.title() == "Harness - civicshare"
    recorder.check(page, "good page")
    assert recorder.folder.joinpath("01-good-page.png").stat().st_size > 1000


def test_axe_reports_violations_by_rule(page: Any, site: str) -> None:
    page.goto(f"{site}/bad")
    found = {v["id"] for v in axe_violations(page)}
    assert {"image-alt", "label"} <= found, found


def test_a_csp_refusal_is_a_console_error(page: Any, site: str, recorder: Recorder) -> None:
    page.goto(f"{site}/inline")
    assert page.title() == "Inline"
    assert any("Content Security Policy" in text for text, _url in recorder.console), recorder.console
