"""A records manager's day in a real chromium against two real nodes, checked by axe-core on every page.

North Wold's records manager signs in, imports a dataset, shares it with South Fen under the signed
agreement (after a preview of exactly which fields and rows leave), watches the transfer until its
receipt is verified, verifies the audit log and signs out; South Fen's records manager signs in and
finds it in the inbox. Each page is screenshotted to test-artifacts/web/ and must have no WCAG 2.2
A/AA violation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from civicshare.synthetic import residents_csv
from tests.support.nodes import NodeHome, agree
from tests.web.browser import Recorder, sign_in, sign_out
from tests.web.webnodes import role_user

ROWS = 40
AGREED = ["resident_id", "last_name", "postcode"]
NOT_AGREED = ["nhs_number", "email"]
USER = role_user("records_manager")


def test_import_share_receive_and_verify_in_the_browser(pair: tuple[NodeHome, NodeHome], page: Any,
                                                          recorder: Recorder, tmp_path: Path) -> None:
    north, south = pair
    agreement = agree(north, south, dataset="residents", fields=AGREED)
    source = tmp_path / "residents.csv"
    source.write_bytes(residents_csv(ROWS))

    sign_in(page, recorder, north.base_url, "north", USER)

    # Import the dataset through the upload form.
    page.get_by_role("navigation", name=re.compile("Service|Menu|Main", re.I)).get_by_role(
        "link", name="Holdings").click()
    recorder.check(page, "holdings")
    page.goto(f"{north.base_url}/web/holdings/import/dataset")
    recorder.check(page, "import a dataset")
    page.get_by_label("Dataset file").set_input_files(str(source))
    page.get_by_label(re.compile("^Name of the dataset")).fill("residents")
    page.get_by_role("button", name="Import dataset").click()
    page.wait_for_url(re.compile(r".*/web/holdings/h_[^/?]+\?done=imported$"))
    holding_id = page.url.split("/web/holdings/")[1].split("?")[0]
    assert page.get_by_role("heading", level=1).inner_text().strip().startswith("residents")
    assert f"{ROWS}" in page.locator("main").inner_text()
    recorder.check(page, "holding imported")

    # Share it: the preview lists exactly what leaves, then send and watch until the receipt is verified.
    page.goto(f"{north.base_url}/web/share?holding={holding_id}")
    recorder.check(page, "share")
    page.get_by_label("Partner").select_option("south-fen")
    page.get_by_label("Agreement").select_option(agreement)
    page.get_by_role("button", name="Preview the share").click()
    page.wait_for_url(re.compile(r".*/web/share/preview$"))
    assert page.locator("#fields-leaving li").all_inner_texts() == AGREED
    withheld = page.locator("#fields-withheld li").all_inner_texts()
    assert set(NOT_AGREED) <= set(withheld) and not set(AGREED) & set(withheld)
    rows = page.locator(".govuk-summary-list__row", has=page.locator("dt", has_text=re.compile("^Rows$")))
    assert rows.locator("dd").inner_text().strip() == f"{ROWS}"
    recorder.check(page, "share preview")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/web/transfers/t_[^/?]+\?sent=1$"))
    transfer_id = page.url.split("/web/transfers/")[1].split("?")[0]
    recorder.check(page, "transfer sent")
    # The page's own script polls the status; without it a reload shows the same.
    page.get_by_text("Delivered — receipt verified").first.wait_for(timeout=60_000)
    recorder.check(page, "transfer delivered")

    # The audit log verifies.
    page.goto(f"{north.base_url}/web/audit")
    recorder.check(page, "audit log")
    assert page.get_by_text(holding_id).count() > 0, "the import is in the audit log"
    page.get_by_label("Also ask partners").check()
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url(re.compile(r".*/web/audit/verify$"))
    assert page.get_by_text("Audit log verified", exact=True).is_visible()
    result = page.locator("#verify-result").inner_text()
    assert "south-fen:" in result and "could not be checked" not in result, result
    recorder.check(page, "audit verified")
    sign_out(page, recorder, north.base_url, "north")

    # South Fen's records manager finds it in the inbox.
    sign_in(page, recorder, south.base_url, "south", USER)
    page.goto(f"{south.base_url}/web/inbox")
    recorder.check(page, "inbox")
    row = page.locator("tr", has_text=transfer_id)
    assert row.count() == 1 and "north-wold" in row.inner_text().lower().replace(" ", "-")
    row.get_by_role("link").first.click()
    page.wait_for_url(re.compile(rf".*/web/(inbox|transfers)/{transfer_id}$"))
    recorder.check(page, "inbox arrival")
    assert agreement in page.locator("main").inner_text()
    sign_out(page, recorder, south.base_url, "south")
