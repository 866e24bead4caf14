"""Fixtures of the web tests: a real chromium, real serving nodes, and users who sign in with passwords."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.nodes import NodeHome
from tests.web.browser import Recorder, launch
from tests.web.webnodes import web_pair


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium per test process (pytest-xdist worker)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Recorder:
    return Recorder(request.node.name)


@pytest.fixture
def page(browser: Any, recorder: Recorder) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, British English, 30 s per action at most (the suite
    runs beside many node processes on two cores)."""
    context = browser.new_context(locale="en-GB", viewport={"width": 1024, "height": 768})
    context.set_default_timeout(30_000)
    try:
        yield recorder.watch(context.new_page())
    finally:
        context.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeHome, NodeHome]]:
    """north-wold and south-fen serving, pinning each other, each with a records manager who signs in.

    One pair per test module (set-up is most of a browser test's time), stopped when the module ends:
    tests sharing it make their own data (their own dataset names) and never depend on another's."""
    with web_pair(tmp_path_factory.mktemp("pair")) as nodes:
        yield nodes
