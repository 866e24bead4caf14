"""The exchange pages: share with a preview, transfers and their live status, inbox, agreements, audit, keys.

Most tests drive the node's whole app in process (FastAPI's TestClient) over one node hosting three
councils that pin each other, on SQLite and on PostgreSQL; deliveries go through the node's own exchange
routes. test_web_exchange_browser.py shares between two real serving nodes in chromium.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from civicshare.access import Actor, Role
from civicshare.api.app import create_app
from civicshare.db import tables as t
from civicshare.node import Node
from tests.agreements.enforce_support import AGREED, EAST, clock, cnode, ctransport, deliver, letter, residents
from tests.agreements.lifecycle_support import activate, send_notices
from tests.exchange.transfer_support import NORTH, SOUTH
from tests.web.webnodes import hidden

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

PASSWORD = "exchange pages, not a secret"  # noqa: S105 - a test fixture's password


class Person:
    """One signed-in person's browser without JavaScript, over the in-process app."""

    def __init__(self, client: TestClient, org: str, name: str) -> None:
        self.client, self.org, self.name = client, org, name

    def get(self, path: str, status: int = 200, **kwargs: Any) -> str:
        response = self.client.get(path, **kwargs)
        assert response.status_code == status, f"GET {path}: {response.status_code}\n{response.text[:3000]}"
        return response.text

    def csrf(self) -> str:
        # Every role reads the agreements register, and every signed-in page carries the sign-out form's token.
        return hidden(self.get("/web/agreements"), "csrf_token")

    def post(self, path: str, data: dict[str, str], status: int = 200, *, csrf: bool = True) -> httpx.Response:
        body = {**data, "csrf_token": self.csrf()} if csrf else dict(data)
        response = self.client.post(path, data=body)
        assert response.status_code == status, f"POST {path}: {response.status_code}\n{response.text[:3000]}"
        return response


@pytest.fixture
def web(cnode: Node) -> Iterator[Any]:
    """``web(org, role)``: a person of that role at that organisation, signed in to the app in process."""
    app = create_app(cnode)
    clients: list[TestClient] = []

    def person(org: str, role: Role) -> Person:
        name = f"{org}-{role.value}".replace("_", "-")
        if not any(u.name == name for u in cnode.users.list(org)):
            cnode.add_user(org, name, role, PASSWORD)
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        page = client.get("/web/sign-in")
        answer = client.post("/web/sign-in", data={"signin_token": hidden(page.text, "signin_token"), "org": org,
                                                   "name": name, "password": PASSWORD, "next": "/web/"})
        assert answer.status_code == 303, answer.text[:2000]
        return Person(client, org, name)

    yield person
    for client in clients:
        client.close()


def text_of(page: str) -> str:
    """The page's words, tags removed and spaces collapsed, to look for sentences in."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def error_summary(page: str) -> str:
    found = re.search(r'<div class="govuk-error-summary".*?</ul>', page, re.S)
    assert found, "no error summary on the page"
    return text_of(found.group(0))


# Share: choose, preview, send -----------------------------------------------------------------------------


def test_share_preview_lists_exactly_what_leaves_then_sends(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    manager = web(NORTH, Role.RECORDS_MANAGER)
    form = manager.get(f"/web/share?holding={holding.id}")
    assert f'<option value="{holding.id}" selected>' in form and f'<option value="{agreement}">' in form
    assert '<option value="south-fen">' in form
    choice = {"holding": holding.id, "to": SOUTH, "agreement": agreement}
    # Without the session's CSRF token the preview is refused, and nothing else happens.
    manager.post("/web/share/preview", choice, 403, csrf=False)
    page = manager.post("/web/share/preview", choice).text
    words = text_of(page)
    assert "Check what will be shared" in words
    leaving = re.search(r'<ul[^>]*id="fields-leaving">(.*?)</ul>', page, re.S)
    kept = re.search(r'<ul[^>]*id="fields-withheld">(.*?)</ul>', page, re.S)
    assert leaving and re.findall(r"<li>(.*?)</li>", leaving.group(1)) == ["surname", "postcode"]
    assert kept and re.findall(r"<li>(.*?)</li>", kept.group(1)) == ["nhs_number", "date_of_birth"]
    assert "Rows 3" in words and "Classification OFFICIAL" in words and f"{agreement} version 1" in words
    assert cnode.transfers(Actor.operator(NORTH)) == []  # a preview sends nothing
    # Send: the transfer's page, then delivery and its verified receipt.
    sent = manager.post("/web/share/send", choice, 303)
    location = sent.headers["location"]
    transfer_id = re.fullmatch(r"/web/transfers/(t_[a-z0-9]+)\?sent=1", location)
    assert transfer_id, location
    tid = transfer_id.group(1)
    page = manager.get(location)
    assert "Queued" in text_of(page) and 'data-status-url="/web/transfers/' + tid + '/status.json"' in page
    assert "Refresh to see the latest status" in page and "/web/static/transfer-status.js" in page
    status = json.loads(manager.get(f"/web/transfers/{tid}/status.json"))
    assert (status["state"], status["finished"], status["receipt_verified"]) == ("queued", False, False)
    assert deliver(cnode, ctransport) == {tid: "delivered"}
    status = json.loads(manager.get(f"/web/transfers/{tid}/status.json"))
    assert (status["label"], status["finished"], status["percent"]) == ("Delivered — receipt verified", True, 100)
    page = text_of(manager.get(f"/web/transfers/{tid}"))
    arrived = next(e for e in cnode.inbox(Actor.operator(SOUTH)) if e.transfer_id == tid)
    assert "Delivered — receipt verified" in page and f"Their holding {arrived.holding_id}" in page
    assert "Refresh to see the latest status" not in page and "Fields surname, postcode" in page
    assert "Deletion at the partner" in page and "Due" in page
    ledger = text_of(manager.get("/web/transfers"))
    assert tid in ledger and "Delivered — receipt verified" in ledger


def test_a_refused_preview_says_why_in_the_shares_words(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    manager = web(NORTH, Role.RECORDS_MANAGER)
    raw = manager.post("/web/share/preview", {"holding": holding.id, "to": EAST, "agreement": agreement}).text
    page = text_of(raw)
    assert "This share would be refused" in page
    assert "Data goes only from the agreement's provider to a recipient it names" in page
    assert f"east-marsh is not a recipient under agreement {agreement}" in page
    assert 'action="/web/share/send"' not in raw
    # A document under a dataset agreement: the items rule.
    page = text_of(manager.post("/web/share/preview", {"holding": letter(cnode).id, "to": SOUTH,
                                                       "agreement": agreement}).text)
    assert "covers the dataset 'Residents', not documents" in page
    # Sending anyway (a forged form) is refused by the share itself, shown on the preview page.
    response = manager.post("/web/share/send", {"holding": holding.id, "to": EAST, "agreement": agreement}, 403)
    assert "east-marsh is not a recipient" in error_summary(response.text)
    assert cnode.transfers(Actor.operator(NORTH)) == []


def test_share_form_errors_are_shown_by_each_field(cnode: Node, web: Any) -> None:
    manager = web(NORTH, Role.RECORDS_MANAGER)
    response = manager.post("/web/share/preview", {"holding": "", "to": "", "agreement": ""}, 400)
    summary = error_summary(response.text)
    assert "Choose the holding to share" in summary and "Choose the partner" in summary
    assert response.text.count('class="govuk-error-message"') == 3 and "<title>Error: Share a holding" in response.text
    assert 'href="#holding"' in response.text and 'id="holding"' in response.text
    missing = manager.post("/web/share/preview", {"holding": "h_nothere", "to": SOUTH, "agreement": "DSA-1"}, 400)
    assert "No holding 'h_nothere'" in error_summary(missing.text)
    itself = manager.post("/web/share/preview", {"holding": "h_nothere", "to": NORTH, "agreement": "DSA-1"}, 400)
    assert "is this organisation" in error_summary(itself.text) or "No holding" in error_summary(itself.text)


def test_roles_and_organisations_are_kept_apart(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    transfer = cnode.share(Actor.operator(NORTH), holding.id, SOUTH, agreement=agreement)
    caseworker = web(NORTH, Role.CASEWORKER)
    for path in ("/web/share", "/web/transfers", f"/web/transfers/{transfer.id}", "/web/audit", "/web/keys"):
        assert "may not" in text_of(caseworker.get(path, 403))
    caseworker.post("/web/share/preview", {"holding": holding.id, "to": SOUTH, "agreement": agreement}, 403)
    caseworker.post(f"/web/agreements/{agreement}/revoke", {"reason": "no", "version": "1"}, 403)
    # South-fen's people never see north-wold's transfer, by its id or its status.
    other = web(SOUTH, Role.RECORDS_MANAGER)
    other.get(f"/web/transfers/{transfer.id}", 404)
    other.get(f"/web/transfers/{transfer.id}/status.json", 404)
    assert transfer.id not in other.get("/web/transfers")
    # Without a session every page sends the person to sign in.
    with TestClient(create_app(cnode), follow_redirects=False) as anonymous:
        for path in ("/web/share", "/web/inbox", "/web/transfers", f"/web/transfers/{transfer.id}/status.json",
                     "/web/agreements", "/web/agreements/new", "/web/audit", "/web/keys"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/web/sign-in?next="), path
        assert anonymous.post("/web/audit/verify", data={}).status_code == 303


def test_the_transfer_shows_the_deletion_certificate_once_verified(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, clock: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    transfer = cnode.share(Actor.operator(NORTH), holding.id, SOUTH, agreement=agreement)
    deliver(cnode, ctransport)
    manager = web(NORTH, Role.RECORDS_MANAGER)
    page = text_of(manager.get(f"/web/transfers/{transfer.id}"))
    assert "State Due" in page and "Certificate Not received" in page
    # The agreement is revoked: south-fen deletes its copy and certifies it; north-wold verifies the certificate.
    clock.advance(days=1)
    cnode.revoke_agreement(Actor.operator(NORTH), agreement, "the project has closed")
    send_notices(cnode, ctransport)
    assert cnode.retention.sweep().deleted == [transfer.id]
    send_notices(cnode, ctransport)
    manager = web(NORTH, Role.RECORDS_MANAGER)  # a day later the first session has long ended
    page = text_of(manager.get(f"/web/transfers/{transfer.id}"))
    assert "State Verified" in page and "deleted at recipient, certificate verified" in page
    assert "Certificate Verified" in page
    assert "deleted at recipient, certificate verified" in text_of(manager.get("/web/transfers"))
    # South-fen's inbox says it was deleted, and why.
    arrival = text_of(web(SOUTH, Role.CASEWORKER).get(f"/web/inbox/{transfer.id}"))
    assert "the project has closed" in arrival and "Open the holding" not in arrival


# Inbox -----------------------------------------------------------------------------------------------------


def test_the_inbox_shows_the_senders_quality_before_use(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    transfer = cnode.share(Actor.operator(NORTH), holding.id, SOUTH, agreement=agreement)
    deliver(cnode, ctransport)
    caseworker = web(SOUTH, Role.CASEWORKER)
    listing = text_of(caseworker.get("/web/inbox"))
    arrived = next(e for e in cnode.inbox(Actor.operator(SOUTH)) if e.transfer_id == transfer.id)
    score = arrived.manifest.holding.quality_score
    assert score is not None and "Residents" in listing and "north-wold" in listing and f"{score:g} –" in listing
    page = caseworker.get(f"/web/inbox/{transfer.id}")
    table = re.search(r'<table class="govuk-table" id="quality-fields">(.*?)</table>', page, re.S)
    assert table and re.findall(r'<th scope="row" class="govuk-table__header">(.*?)</th>', table.group(1)) == AGREED
    assert f'href="/web/holdings/{arrived.holding_id}"' in page
    assert f"Agreement {agreement}" in text_of(page)
    # The sender has no such arrival.
    web(NORTH, Role.CASEWORKER).get(f"/web/inbox/{transfer.id}", 404)


# Agreements ------------------------------------------------------------------------------------------------


def test_draft_propose_sign_and_revoke_an_agreement(
        cnode: Node, ctransport: httpx.BaseTransport, web: Any, tmp_path: Path) -> None:
    residents(cnode, tmp_path)
    manager = web(NORTH, Role.RECORDS_MANAGER)
    form = manager.get("/web/agreements/new")
    assert '<option value="Residents">' in form and "nhs_number, surname, postcode, date_of_birth" in form
    missing = manager.post("/web/agreements/new", {"recipient": "", "covers": "dataset", "dataset": ""}, 400)
    assert "Choose the organisation that receives the data" in error_summary(missing.text)
    assert "Choose the dataset the agreement covers" in error_summary(missing.text)
    wrong = manager.post("/web/agreements/new", {"recipient": SOUTH, "covers": "dataset", "dataset": "Residents",
                                                 "fields": "surname, shoe_size"}, 400)
    assert "has no field shoe_size" in error_summary(wrong.text)
    review = manager.post("/web/agreements/new", {"recipient": SOUTH, "covers": "dataset", "dataset": "Residents",
                                                  "fields": "surname, postcode"}).text
    text = html.unescape(re.search(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', review, re.S).group(1))
    assert "fields: [surname, postcode]" in text.replace('"', "")
    # A broken agreement is refused with its problems; the text is kept for fixing.
    broken = manager.post("/web/agreements", {"text": text.replace("lawful_basis:", "lawful_basis_x:")}, 400)
    assert "lawful_basis" in error_summary(broken.text) and "lawful_basis_x" in broken.text
    created = manager.post("/web/agreements", {"text": text}, 303)
    detail_url = created.headers["location"]
    agreement_id = re.search(r"/web/agreements/([^?]+)\?version=1&done=created", detail_url).group(1)
    page = text_of(manager.get(detail_url))
    assert "in the register as a draft" in page and "Draft" in page and "Propose to the other parties" in page
    assert "Sign for" not in page  # a records manager never signs
    assert agreement_id in text_of(manager.get("/web/agreements"))
    manager.post(f"/web/agreements/{agreement_id}/propose", {"version": "1"}, 303)
    send_notices(cnode, ctransport)
    # Only a data protection officer may sign: the manager's forged form is refused.
    manager.post(f"/web/agreements/{agreement_id}/sign", {"version": "1"}, 403)
    for org in (SOUTH, NORTH):
        dpo = web(org, Role.DPO)
        page = dpo.get(f"/web/agreements/{agreement_id}")
        assert f"Sign for {org}" in page
        dpo.post(f"/web/agreements/{agreement_id}/sign", {"version": "1"}, 303)
        send_notices(cnode, ctransport)
    page = text_of(manager.get(f"/web/agreements/{agreement_id}"))
    assert "Active" in page and "Signed by north-wold-dpo" in page and "Signed by south-fen-dpo" in page
    # Revoking needs a reason, by the field.
    confirm = manager.get(f"/web/agreements/{agreement_id}/revoke")
    assert "Revoke this agreement" in confirm
    empty = manager.post(f"/web/agreements/{agreement_id}/revoke", {"reason": " ", "version": "1"}, 400)
    assert "Enter why the agreement is revoked" in error_summary(empty.text)
    assert 'id="reason-error"' in empty.text
    done = manager.post(f"/web/agreements/{agreement_id}/revoke", {"reason": "the pilot ended", "version": "1"}, 303)
    page = text_of(manager.get(done.headers["location"]))
    assert "The agreement is revoked" in page and "the pilot ended" in page and "Revoked" in page
    assert cnode.agreement(Actor.operator(NORTH), agreement_id).state == "revoked"


def test_the_register_flags_reviews_due(cnode: Node, ctransport: httpx.BaseTransport, web: Any, clock: Any) -> None:
    record = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, media_types=["application/pdf"])
    # Ten days before the review date, the register flags it.
    clock.advance(days=(record.agreement.review_date - clock.now.date()).days - 10)
    page = text_of(web(NORTH, Role.DPO).get("/web/agreements"))
    assert "Needs attention" in page and f"{record.id}: review" in page
    assert "Download the register as a spreadsheet" in page
    csv = web(NORTH, Role.RECORDS_MANAGER).client.get("/web/agreements.csv")
    assert csv.status_code == 200 and csv.text.startswith("id,version,state") and record.id in csv.text


# Audit log and key register --------------------------------------------------------------------------------


def test_audit_filters_and_verify_now(cnode: Node, ctransport: httpx.BaseTransport, web: Any,
                                      tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    manager = web(NORTH, Role.RECORDS_MANAGER)
    page = manager.get(f"/web/audit?object={holding.id}")
    body = page.split('id="audit-entries"')[1].split("<tbody")[1]
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", body, re.S)
    assert rows and all(holding.id in r for r in rows)
    assert "holding.import" in text_of(page)
    only_logins = text_of(manager.get("/web/audit?action=login"))
    assert "login" in only_logins and "holding.import" not in only_logins
    bad = manager.get("/web/audit?from=2026-02-30", 400)
    assert "Enter a real date" in error_summary(bad)
    verified = text_of(manager.post("/web/audit/verify", {}).text)
    assert "Audit log verified" in verified and "entries were recomputed" in verified
    manager.post("/web/audit/verify", {}, 403, csrf=False)
    refused = cnode.audit_entries(Actor.operator(NORTH), by=manager.name)
    assert any(e.action == "web.csrf_refused" for e in refused)
    # Someone edits an entry in the database: "Verify now" says so, naming the entry.
    first = cnode.audit_entries(Actor.operator(NORTH), obj=holding.id)[0]
    c = t.audit_entries.c
    with cnode.db.engine.begin() as conn:
        stored = conn.execute(select(c.entry).where(c.org_id == NORTH, c.idx == first.index)).scalar_one()
        conn.execute(update(t.audit_entries).where(c.org_id == NORTH, c.idx == first.index).values(
            entry=stored.replace(b'"outcome":"ok"', b'"outcome":"refused"')))
    failed = manager.post("/web/audit/verify", {}, 500).text
    assert "The audit log did not verify" in failed and f"does not verify at index {first.index}" in failed


def test_the_key_register_says_where_each_key_is_held(cnode: Node, web: Any, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    page = web(NORTH, Role.DPO).get("/web/keys")
    keys = cnode.key_register(Actor.operator(NORTH))
    words = text_of(page)
    for key in keys:
        if key.state == "active":
            assert key.id in words and f"{key.custody}: {key.location}" in words
    assert {"signing", "kek", "data"} <= {k.purpose for k in keys}
    assert f'href="/web/holdings/{holding.id}"' in page
    # South-fen's keys are not north-wold's.
    assert not any(k.id in words for k in cnode.key_register(Actor.operator(SOUTH)))
