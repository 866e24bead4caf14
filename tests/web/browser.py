"""The browser side of the web tests: Debian's chromium driven by Playwright, axe-core, screenshots.

Chromium is `/usr/bin/chromium` (``make browser`` installs it); Playwright's own browser downloads
are never used. axe-core comes from npm (``package.json``, installed by ``make install``) and is
evaluated in the page through the DevTools protocol, so the pages' strict Content-Security-Policy
stays in force while it runs: a page that breaks its own CSP shows up as a console error.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CIVICSHARE_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = REPO / "test-artifacts" / "web"
# WCAG 2.2 A and AA, as axe-core tags them (2.2 added only AA rules that axe can test).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def missing(what: str) -> None:
    """Skip with the reason outside CI; under CI=true a missing browser part is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(what + " Under CI=true this is a failure, not a skip.")
    pytest.skip(what)


def launch(playwright: Any) -> Any:
    """Headless chromium; --no-sandbox because the tests run as root in a container."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing; `make browser` installs Debian's chromium.")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "page"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA violations on the page as it is now."""
    if not AXE.exists():
        missing(f"{AXE} is missing; `make install` runs npm ci, which installs axe-core.")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    # resultTypes: only violations are needed, so axe skips detailing every pass (much quicker).
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
                           "resultTypes: ['violations']})", AXE_TAGS)
    return list(result["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation and node, for an assertion message a person can act on."""
    lines = []
    for v in violations:
        for node in v["nodes"][:5]:
            lines.append(f"  {v['id']} ({v['impact']}): {v['help']} at {json.dumps(node['target'])}: "
                         f"{node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


@dataclass
class Recorder:
    """Screenshots of each page to test-artifacts/web/<test>/<nn>-<step>.png, and axe on each."""

    test: str
    pages: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (error, where)

    @property
    def folder(self) -> Path:
        return ARTIFACTS / _slug(self.test)

    def watch(self, page: Any) -> Any:
        """Collect the page's console errors (a CSP refusal shows there)."""
        page.on("console", lambda msg: self.console.append((msg.text, msg.location.get("url", "")))
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.console.append((f"uncaught: {exc}", "")))
        return page

    def shot(self, page: Any, step: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{len(self.pages) + 1:02d}-{_slug(step)}.png"
        page.screenshot(path=str(path), full_page=True)
        self.pages.append(step)
        return path

    def check(self, page: Any, step: str) -> None:
        """Screenshot the page, then assert zero WCAG 2.2 A/AA violations and no console errors."""
        path = self.shot(page, step)
        violations = axe_violations(page)
        assert not violations, (f"axe-core found {len(violations)} WCAG 2.2 A/AA violation(s) on {step} "
                                f"({page.url}; screenshot {path}):\n{describe(violations)}")
        # The status of the page itself (a 404 page, say) is the test's to check; any other error is a fault.
        errors = [f"{text} ({url})" for text, url in self.console
                  if not (url == page.url and text.startswith("Failed to load resource"))]
        self.console.clear()
        assert not errors, f"console errors by {step} ({page.url}): {errors}"


def sign_in(page: Any, recorder: Recorder, base_url: str, who: str, user: str, password: str | None = None) -> None:
    """Open the web UI without a session, get sent to the sign-in page, sign in, land on the dashboard."""
    from tests.web.webnodes import PASSWORD

    page.goto(f"{base_url}/web/")
    assert page.url.startswith(f"{base_url}/web/sign-in"), "a page without a session asks to sign in"
    recorder.check(page, f"{who} sign in")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password or PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/web/")
    recorder.check(page, f"{who} dashboard")


def sign_out(page: Any, recorder: Recorder, base_url: str, who: str) -> None:
    """Sign out with the header's button; afterwards a page asks to sign in again."""
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/web/signed-out.*"))
    recorder.check(page, f"{who} signed out")
    page.goto(f"{base_url}/web/holdings")
    assert page.url.startswith(f"{base_url}/web/sign-in"), "after signing out the session is gone"
