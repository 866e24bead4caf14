"""The holdings pages against real ``civicshare serve`` processes: uploads never reach the disk in plaintext
(the server's open files are watched while they arrive), and in chromium every holdings page passes axe-core
with the upload script on. (A share on both dashboards: test_web_exchange_browser.py.)
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.nodes import NodeHome
from tests.web.holdings_support import (
    CANARY,
    MULTIPART,
    PEOPLE_CSV,
    PEOPLE_MAPPING,
    blobs,
    multipart,
    page_html,
)
from tests.web.webnodes import WebClient, add_web_user

NORTH = "north-wold"


# Nothing reaches the disk ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[NodeHome]:
    node = NodeHome.create(tmp_path / "north", NORTH, "North Wold District Council")
    add_web_user(node, "rita", "records_manager")
    node.start("--max-dataset-mb", "2", "--max-document-mb", "2")
    try:
        yield node
    finally:
        node.stop()


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


class FdWatch:
    """Looks at the server's open files while an upload is under way: what it holds, and where."""

    def __init__(self, pid: int, tmpdir: Path) -> None:
        self.pid, self.tmpdir = pid, tmpdir
        self.seen: set[str] = set()
        self.tmp_listing: list[list[str]] = []

    def look(self) -> None:
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                self.seen.add(os.readlink(fd))
            except OSError:
                continue  # closed while we looked
        self.tmp_listing.append(sorted(p.name for p in self.tmpdir.iterdir()))

    def on_disk(self) -> list[str]:
        """Open files that are plaintext candidates: anything under TMPDIR, or deleted but still open."""
        return sorted(t for t in self.seen if t.startswith(str(self.tmpdir))
                      or (t.endswith("(deleted)") and not t.startswith("/memfd:")))


def _slowly(data: bytes, watch: FdWatch, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        if i and i % (4 * size) == 0:
            time.sleep(0.05)  # let the server take what was sent, then look at what it holds
            watch.look()


def test_uploads_stay_in_memory_or_go_straight_into_encryption(served: NodeHome) -> None:
    with WebClient(served) as c:
        c.signed_in("rita")
        token = c.csrf("/web/holdings/import/dataset")
        watch = FdWatch(served.pid, served.tmpdir)
        # Over 1 MB: Starlette's UploadFile would have rolled these over into a temporary file by now.
        rows = "".join(f"R{i},{CANARY} {i},NW1 1AA\n" for i in range(45000))  # about 1.5 MB
        body = multipart({"csrf_token": token, "name": "big residents", "classification": "OFFICIAL",
                           "schema": "", "mapping": "columns", "policy": "flag", "encoding": "auto"},
                          "dataset", "residents.csv", _slowly(("resident_id,name,postcode\n" + rows).encode(), watch))
        answer = c.post("/web/holdings/import/dataset", content=body,
                        headers=MULTIPART)
        assert answer.status_code == 303, answer.text[:2000]
        assert any(t.startswith("/memfd:civicshare-upload") for t in watch.seen), watch.seen
        document = os.urandom(1536 * 1024) + CANARY.encode()
        body = multipart({"csrf_token": token, "title": "", "classification": "OFFICIAL"}, "document", "scan.bin",
                          _slowly(document, watch))
        answer = c.post("/web/holdings/import/document", content=body,
                        headers=MULTIPART)
        assert answer.status_code == 303, answer.text[:2000]
        assert any(t.startswith("pipe:") for t in watch.seen)
        assert any(f"/blobs/{NORTH}/" in t for t in watch.seen), f"sealed as it arrived: {watch.seen}"
    assert watch.on_disk() == [], "an upload was spooled to a file"
    assert all(listing == [] for listing in watch.tmp_listing), watch.tmp_listing
    assert len(watch.tmp_listing) >= 4
    assert [p for p in _files(served.home, served.tmpdir) if CANARY.encode() in p.read_bytes()] == []


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(served: NodeHome) -> None:
    with WebClient(served) as c:
        c.signed_in("rita")
        token = c.csrf("/web/holdings/import/dataset")
        big = ("resident_id,name,postcode\n" + f"R1,{CANARY},NW1 1AA\n" * 70000).encode()  # about 2.3 MB
        answer = c.post("/web/holdings/import/dataset",
                        data={"csrf_token": token, "name": "big", "classification": "OFFICIAL", "schema": "",
                              "mapping": "columns", "policy": "flag", "encoding": "auto"},
                        files={"dataset": ("big.csv", big, "text/csv")})
        page = page_html(answer, 413)
        assert "The selected dataset must be smaller than 2 MB" in page
        assert 'href="#dataset"' in page and "<title>Error: Import a dataset" in page
        # Sent without a length, the document is refused while it streams in.
        watch = FdWatch(served.pid, served.tmpdir)
        body = multipart({"csrf_token": token, "title": "", "classification": "OFFICIAL"}, "document", "big.bin",
                          _slowly(os.urandom(2048 * 1024) + CANARY.encode() * 1000, watch))
        try:
            refused = c.post("/web/holdings/import/document", content=body,
                             headers=MULTIPART)
        except httpx.TransportError:
            refused = None  # the server may close the connection before the client finished sending
        if refused is not None:
            assert "The selected document must be smaller than 2 MB" in page_html(refused, 413)
        holdings = page_html(c.get("/web/holdings"))
        assert "There are no holdings yet." in holdings
    deadline = time.monotonic() + 10
    while _files(served.home / "blobs") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blobs(served.home) == []
    assert _files(served.tmpdir) == []
    assert watch.on_disk() == []
    assert [p for p in _files(served.home, served.tmpdir) if CANARY.encode() in p.read_bytes()] == []




# In chromium: every holdings page passes axe, and the upload script shows progress -------------------


def test_the_holdings_pages_in_a_browser(served: NodeHome, page, recorder, tmp_path: Path) -> None:  # noqa: ANN001
    from tests.web.browser import sign_in as browser_sign_in

    base = served.base_url
    people, mapping = tmp_path / "people.csv", tmp_path / "people.yaml"
    people.write_text(PEOPLE_CSV, encoding="utf-8")
    mapping.write_text(PEOPLE_MAPPING, encoding="utf-8")
    browser_sign_in(page, recorder, base, "records manager", "rita")
    page.goto(f"{base}/web/holdings")
    recorder.check(page, "holdings, none yet")
    page.get_by_role("button", name="Import a dataset").click()
    recorder.check(page, "import a dataset")
    # Sent by the upload script with nothing chosen: the errors appear in place, the summary focused.
    page.get_by_label("Schema", exact=True).select_option("person")
    page.get_by_label("Upload a mapping file (YAML)").check()
    page.get_by_role("button", name="Import dataset").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert page.title().startswith("Error: Import a dataset")
    assert "Select the file to import" in summary.inner_text()
    assert "Select the mapping file" in summary.inner_text()
    recorder.check(page, "import a dataset, errors")
    # Sent again from the page the script put in place: the progress bar, then the new holding's page.
    page.get_by_label("Dataset file", exact=True).set_input_files(str(people))
    page.get_by_label("Mapping file (only if you chose to upload one)").set_input_files(str(mapping))
    page.get_by_role("button", name="Import dataset").click()
    page.wait_for_url(re.compile(r".*/web/holdings/h[-_][\w-]+\?done=imported$"))
    assert page.locator(".govuk-notification-banner--success").is_visible()
    chart = page.get_by_role("img", name=re.compile(r"^Quality per field Bars for \d+ fields, from 0 to 100%"))
    assert chart.is_visible()
    recorder.check(page, "the new holding")
    holding_url = page.url.split("?")[0]
    page.get_by_text("Show the data as a table").click()
    recorder.check(page, "the quality data as a table")

    page.get_by_role("button", name="Export").click()
    recorder.check(page, "export")
    page.get_by_label("JSON Lines").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = tmp_path / "out.jsonl"
    download.value.save_as(saved)
    assert CANARY.split()[0] in saved.read_text("utf-8")

    page.goto(holding_url)
    page.get_by_role("button", name="Shred").click()
    recorder.check(page, "shred, are you sure")
    page.get_by_role("button", name="Shred holding").click()
    page.locator(".govuk-error-summary").wait_for()
    recorder.check(page, "shred, not confirmed")
    page.get_by_label(re.compile("I understand that")).check()
    page.get_by_role("button", name="Shred holding").click()
    page.wait_for_url(re.compile(r".*\?done=shredded$"))
    recorder.check(page, "shredded")

    page.goto(f"{base}/web/holdings/import?kind=")
    recorder.check(page, "what are you importing, error")
    page.get_by_label("A document").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/web/holdings/import/document")
    recorder.check(page, "import a document")
    page.get_by_label("Document", exact=True).set_input_files(str(people))
    page.get_by_role("button", name="Import document").click()
    page.wait_for_url(re.compile(r".*\?done=imported$"))
    recorder.check(page, "the new document")

    page.goto(f"{base}/web/holdings/import/dataset")
    page.get_by_label("Dataset file", exact=True).set_input_files(str(people))
    page.get_by_label("Schema", exact=True).select_option("person")
    page.get_by_label("Suggest a mapping for me to review").check()
    page.get_by_role("button", name="Import dataset").click()
    page.get_by_role("heading", name="Check the suggested mapping").wait_for()
    recorder.check(page, "check the suggested mapping")
    page.goto(f"{base}/web/")
    recorder.check(page, "dashboard with holdings")
    page.goto(f"{base}/web/holdings")
    recorder.check(page, "holdings")
