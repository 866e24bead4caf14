"""Every page of the web UI, in a real chromium, has no WCAG 2.2 A/AA violation that axe-core can find.

The journey test covers the pages of a records manager's day; this visits the rest (details,
confirmations, forms with errors, error pages, the two-factor step, a caseworker's refusal) on data
made through the CLI, and screenshots each to test-artifacts/web/.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from civicshare.synthetic import residents_csv
from tests.support.nodes import NodeHome, agree
from tests.web.browser import Recorder, sign_in
from tests.web.webnodes import PASSWORD, add_web_user, role_user

AGREED = ["resident_id", "postcode"]


def _setup(north: NodeHome, south: NodeHome, tmp_path: Path) -> tuple[str, str, str, str]:
    """A dataset shared to South Fen, a caseworker, a user with a TOTP secret: (holding, agreement,
    transfer, totp user)."""
    source = tmp_path / "people.csv"
    source.write_bytes(residents_csv(25))
    with ThreadPoolExecutor(4) as pool:
        holding = pool.submit(north.import_dataset, source, "people")
        agreement = pool.submit(agree, north, south, dataset="people", fields=AGREED)
        caseworker = pool.submit(add_web_user, north, "web-caseworker", "caseworker")
        totp = pool.submit(add_web_user, north, "web-totp", "dpo")
        holding_id, agreement_id = str(holding.result()["id"]), agreement.result()
        caseworker.result(), totp.result()
    north.json("user", "totp", "web-totp")
    transfer = north.share(holding_id, "south-fen", agreement=agreement_id, wait=True, timeout=120)
    assert transfer["state"] == "delivered", transfer
    return holding_id, agreement_id, str(transfer["id"]), "web-totp"


def visit(page: Any, recorder: Recorder, node: NodeHome, path: str, step: str, status: int = 200) -> None:
    answer = page.goto(f"{node.base_url}{path}")
    assert answer is not None and answer.status == status, f"{path} answered {answer and answer.status}"
    recorder.check(page, step)


def test_every_page_has_no_wcag_22_violation(pair: tuple[NodeHome, NodeHome], browser: Any, page: Any,
                                             recorder: Recorder, tmp_path: Path) -> None:
    north, south = pair
    holding_id, agreement_id, transfer_id, totp_user = _setup(north, south, tmp_path)

    sign_in(page, recorder, north.base_url, "north", role_user("records_manager"))
    for path, step in [
        (f"/web/holdings/{holding_id}", "holding detail with quality chart"),
        (f"/web/holdings/{holding_id}/export", "export"),
        (f"/web/holdings/{holding_id}/shred", "shred confirmation"),
        ("/web/holdings/import", "import start"),
        ("/web/holdings/import/document", "import a document"),
        ("/web/transfers", "transfers ledger"),
        (f"/web/transfers/{transfer_id}", "transfer with receipt"),
        ("/web/agreements", "agreements register"),
        (f"/web/agreements/{agreement_id}", "agreement detail"),
        (f"/web/agreements/{agreement_id}/revoke", "revoke confirmation"),
        (f"/web/audit?object={holding_id}", "audit log filtered"),
        ("/web/keys", "key register"),
        ("/web/accessibility", "accessibility statement"),
        ("/web/cookies", "cookies"),
    ]:
        visit(page, recorder, north, path, step)
    visit(page, recorder, north, "/web/holdings/h_nosuchholding", "not found page", 404)
    assert "Page not found" in page.title()

    # Forms sent empty show the GOV.UK error summary, linked to each field.
    for path, button, step in [("/web/holdings/import/dataset", "Import dataset", "dataset import errors"),
                               ("/web/share", "Preview the share", "share errors"),
                               ("/web/agreements/new", "Make the draft", "new agreement errors")]:
        visit(page, recorder, north, path, step.replace(" errors", ""))
        page.get_by_role("button", name=button).click()
        page.locator(".govuk-error-summary").wait_for()
        assert page.title().startswith("Error: "), page.title()
        recorder.check(page, step)

    # A dataset import with a suggested mapping stops at the review page.
    people = tmp_path / "people.csv"
    people.write_text("Name,DOB,Post Code\nAda Lovelace,03/04/1980,nw1 4ab\n")
    visit(page, recorder, north, "/web/holdings/import/dataset", "dataset import again")
    page.get_by_label("Dataset file").set_input_files(str(people))
    page.get_by_label("Schema", exact=True).select_option("person")
    page.get_by_label("Suggest a mapping for me to review").check()
    page.get_by_role("button", name="Import dataset").click()
    page.get_by_role("button", name="Import dataset with this mapping").wait_for()
    recorder.check(page, "mapping review")

    # Drafting an agreement from the template: the review page, then the draft's own page.
    visit(page, recorder, north, "/web/agreements/new", "new agreement")
    page.get_by_label("Recipient").select_option("south-fen")
    page.get_by_label("Documents").check()
    page.get_by_role("button", name="Make the draft").click()
    page.locator("textarea").wait_for()
    recorder.check(page, "agreement review")
    page.get_by_role("button", name="Add to the register as a draft").click()
    page.wait_for_url(re.compile(r".*/web/agreements/DSA-[^/]+(\?.*)?$"))
    recorder.check(page, "agreement draft")

    # A caseworker may not read the audit log: the 403 page; a TOTP user's second step.
    for user, path, step, status in [("web-caseworker", "/web/audit", "permission denied page", 403),
                                     (totp_user, None, "two-factor step", 200)]:
        context = browser.new_context(locale="en-GB")
        other = recorder.watch(context.new_page())
        try:
            other.goto(f"{north.base_url}/web/sign-in")
            other.get_by_label("User name").fill(user)
            other.get_by_label("Password").fill(PASSWORD)
            other.get_by_role("button", name="Sign in").click()
            other.wait_for_load_state()
            if path:
                visit(other, recorder, north, path, step, status)
            else:
                assert "/web/sign-in/two-factor" in other.url
                recorder.check(other, step)
        finally:
            context.close()

    # The recipient's side.
    sign_in(page, recorder, south.base_url, "south", role_user("records_manager"))
    visit(page, recorder, south, "/web/inbox", "south inbox")
    visit(page, recorder, south, f"/web/inbox/{transfer_id}", "south arrival")
