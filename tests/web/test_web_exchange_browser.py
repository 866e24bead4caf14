"""Sharing between two real serving nodes in chromium: preview, send, and the transfer's page following the
status live (no reload) until "Delivered — receipt verified"; the other exchange pages checked with axe; the
partner's inbox; both dashboards and holding pages after the share. North-wold is on PostgreSQL (the pages'
storage is tested on both backends in process, in test_web_exchange.py and test_web_holdings.py).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.nodes import agree, serving_pair
from tests.web.browser import Recorder, sign_in
from tests.web.holdings_support import page_html
from tests.web.webnodes import SERVE, WebClient, add_web_user

PASSWORD = "exchange pages, not a secret"  # noqa: S105 - a test fixture's password


def text_of(page: str) -> str:
    """The page's words, tags removed and spaces collapsed, to look for sentences in."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# Today's row of the transfers-per-day chart's table: sent, then received.
TODAY = re.compile(r'<th scope="row" class="govuk-table__header">\d+ \w+ \d{4}</th>\s*'
                   r'<td[^>]*>(\d+)</td>\s*<td[^>]*>(\d+)</td>\s*</tr>\s*</tbody>')


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_share_between_two_serving_nodes_until_the_receipt_is_verified(
        tmp_path: Path, db_url: str | None, page: Any, recorder: Recorder) -> None:
    """In chromium: preview and send, then the transfer's page follows the status live (no reload) while the
    partner is down and once it is back, until the receipt is verified; then the partner's inbox has it."""
    with serving_pair(tmp_path, db_url, *SERVE) as (north, south):
        source = tmp_path / "residents.csv"
        source.write_text("surname,postcode,nhs_number\nAbbott,NW1 1AA,9434765919\nBrown,NW2 2BB,9434765870\n")
        holding = north.import_dataset(source, "Residents")["id"]
        agreement = agree(north, south, dataset="Residents", fields=["surname", "postcode"])
        add_web_user(north, "nw-manager", "records_manager", PASSWORD)
        add_web_user(south, "sf-caseworker", "caseworker", PASSWORD)
        add_web_user(south, "sf-manager", "records_manager", PASSWORD)
        south.stop()  # the transfer waits for the partner, so the page can be seen following it
        sign_in(page, recorder, north.base_url, "north", "nw-manager", PASSWORD)
        page.goto(f"{north.base_url}/web/share?holding={holding}")
        page.get_by_label("Partner").select_option("south-fen")
        page.get_by_label("Agreement").select_option(agreement)
        recorder.check(page, "share form")
        page.get_by_role("button", name="Preview the share").click()
        page.get_by_role("heading", name="Check what will be shared").wait_for()
        assert page.locator("#fields-leaving li").all_inner_texts() == ["surname", "postcode"]
        assert page.locator("#fields-withheld li").all_inner_texts() == ["nhs_number"]
        recorder.check(page, "share preview")
        page.get_by_role("button", name="Send").click()
        page.wait_for_url(re.compile(r".*/web/transfers/t_[a-z0-9]+\?sent=1$"))
        tid = page.url.split("/web/transfers/")[1].split("?")[0]
        # The script took over from the refresh link, and shows the transfer still on its way.
        page.locator("#transfer-refresh").wait_for(state="hidden")
        assert page.locator("#transfer-status-label").inner_text() in ("Queued", "Sending")
        recorder.check(page, "transfer on its way")
        south.restart()
        done = page.locator("#transfer-status-label", has_text="Delivered — receipt verified")
        done.wait_for(timeout=90_000)
        assert page.url.endswith(f"/web/transfers/{tid}?sent=1")  # updated in place, never reloaded
        assert page.locator("#transfer-progress").get_attribute("value") == "100"
        # The receipt's fields came in too, still without a reload.
        page.locator("#transfer-details", has_text="Their holding").wait_for()
        recorder.check(page, "transfer delivered")
        # The other pages of the exchange, checked with axe as well.
        page.goto(f"{north.base_url}/web/audit")
        page.get_by_role("button", name="Verify now").click()
        page.locator("#verify-result", has_text="were recomputed").wait_for()
        recorder.check(page, "audit verified")
        page.goto(f"{north.base_url}/web/agreements/new")
        page.get_by_label("Recipient").select_option("south-fen")
        page.get_by_role("radio", name="A dataset").check()
        page.locator("select#dataset").select_option("Residents")
        page.get_by_role("button", name="Make the draft").click()
        page.get_by_role("heading", name="Review the draft agreement").wait_for()
        recorder.check(page, "agreement draft to review")
        page.get_by_role("button", name="Add to the register as a draft").click()
        page.get_by_role("button", name="Propose to the other parties").wait_for()
        recorder.check(page, "new draft agreement")
        sign_in(page, recorder, south.base_url, "south", "sf-caseworker", PASSWORD)
        page.goto(f"{south.base_url}/web/inbox")
        recorder.check(page, "inbox")
        page.get_by_role("link", name="Residents").click()
        page.get_by_role("heading", name="Quality, before you use it").wait_for()
        recorder.check(page, "arrival with its quality")
        # Without JavaScript the same status is in the JSON and on the page.
        with WebClient(north) as sender:
            sender.signed_in("nw-manager", PASSWORD)
            status = sender.get(f"/web/transfers/{tid}/status.json").json()
            assert (status["state"], status["label"]) == ("delivered", "Delivered — receipt verified")
            assert "Delivered — receipt verified" in text_of(sender.get(f"/web/transfers/{tid}").text)
        with WebClient(south) as recipient:
            recipient.signed_in("sf-caseworker", PASSWORD)
            inbox = text_of(recipient.get("/web/inbox").text)
            assert "Residents" in inbox and "north-wold" in inbox and "Arrived" in inbox
            arrival = recipient.get(f"/web/inbox/{tid}").text
            assert "Quality, before you use it" in arrival and "nhs_number" not in arrival
        # Both dashboards and holding pages tell the story of the share.
        with WebClient(north) as sender:
            sender.signed_in("nw-manager", PASSWORD)
            dashboard = page_html(sender.get("/web/"))
            recent = dashboard[dashboard.index("Recent deliveries and refusals"):]
            assert f'href="/web/transfers/{tid}">Residents</a>' in recent
            assert "Sent to south-fen" in recent and ">Delivered<" in recent
            assert TODAY.search(dashboard).groups() == ("1", "0"), "one sent today, none received"
            shown = page_html(sender.get(f"/web/holdings/{holding}"))
            shared = shown[shown.index("Shared with"):shown.index("Audit trail")]
            assert f'href="/web/transfers/{tid}"' in shared and agreement in shared and ">Delivered<" in shared
        received = south.inbox()[0]
        with WebClient(south) as recipient:
            recipient.signed_in("sf-manager", PASSWORD)
            dashboard = page_html(recipient.get("/web/"))
            assert f'href="/web/holdings/{received["holding"]}">Residents</a>' in dashboard
            assert "Received from north-wold" in dashboard
            assert TODAY.search(dashboard).groups() == ("0", "1"), "none sent today, one received"
            shown = page_html(recipient.get(f"/web/holdings/{received['holding']}"))
            origin = shown[shown.index("Received from"):shown.index("Shared with")]
            assert "north-wold" in origin and tid in origin and agreement in origin
            assert f'href="/web/agreements/{agreement}"' in origin and "Kept" in origin
            assert "Imported here by" not in origin
