"""The holdings pages in process: dashboard, list, a holding's page with its quality chart, import (a dataset
with a mapping file or a reviewed suggestion, and documents), export, shred, CSRF and other organisations.

FastAPI's TestClient drives the node's whole app (the API with the web UI at /web) over the two-organisation
test node, on SQLite and on PostgreSQL. test_web_holdings_served.py has the tests against real servers.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from civicshare.access import Actor, Role
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.web.holdings_support import (
    BOUNDARY,
    CSV,
    MULTIPART,
    PEOPLE_CSV,
    PEOPLE_MAPPING,
    blobs,
    multipart,
    page_html,
)

NORTH, SOUTH = "north-wold", "south-fen"
PASSWORD = "a long enough password"


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert found, f"no {name} in the page:\n{page[:3000]}"
    return html.unescape(found.group(1))


def sign_in(client: TestClient, name: str, org: str = NORTH) -> str:
    """Sign in through the real form; the session's CSRF token."""
    page = client.get("/web/sign-in")
    answer = client.post("/web/sign-in", data={"signin_token": hidden(page.text, "signin_token"), "org": org,
                                               "name": name, "password": PASSWORD, "next": "/web/"})
    assert answer.status_code == 303, answer.text[:2000]
    return hidden(client.get("/web/").text, "csrf_token")


def holding_id(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text[:3000]
    found = re.fullmatch(r"/web/holdings/(h[-_][\w-]+)\?done=imported", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    node.add_user(NORTH, "rita", Role.RECORDS_MANAGER, PASSWORD)
    node.add_user(NORTH, "carl", Role.CASEWORKER, PASSWORD)
    node.add_user(SOUTH, "sam", Role.RECORDS_MANAGER, PASSWORD)
    with TestClient(create_app(node), follow_redirects=False) as c:
        yield c


def import_csv(client: TestClient, token: str, text: str = CSV, **fields: str) -> httpx.Response:
    data = {"csrf_token": token, "name": "residents", "classification": "OFFICIAL", "schema": "",
            "mapping": "columns", "policy": "flag", "encoding": "auto", **fields}
    return client.post("/web/holdings/import/dataset", data=data,
                       files={"dataset": ("residents.csv", text.encode(), "text/csv")})


# In process: pages and forms -------------------------------------------------------------------


def test_importing_with_a_mapping_file_shows_the_quality_report_chart_and_audit_trail(client: TestClient,
                                                                                     node: Node) -> None:
    token = sign_in(client, "rita")
    form = page_html(client.get("/web/holdings/import/dataset"))
    assert 'enctype="multipart/form-data"' in form and 'src="/web/static/upload.js"' in form
    # The CSRF token comes first, before any file, so no file is read from a forged form.
    assert form.index('name="csrf_token"') < form.index('type="file"')
    answer = client.post("/web/holdings/import/dataset", data={
        "csrf_token": token, "name": "people", "classification": "OFFICIAL-SENSITIVE", "schema": "person",
        "mapping": "file", "policy": "flag", "encoding": "auto"},
        files={"dataset": ("people.csv", PEOPLE_CSV.encode(), "text/csv"),
               "mapping_file": ("people.yaml", PEOPLE_MAPPING.encode(), "application/yaml")})
    hid = holding_id(answer)
    page = page_html(client.get(f"/web/holdings/{hid}?done=imported"))
    assert "The holding was imported and encrypted." in page
    assert "OFFICIAL-SENSITIVE" in page and "person@" in page
    # The quality chart: an SVG image with a title and a description, and the data as a table.
    assert re.search(r'<svg[^>]*role="img"[^>]*aria-labelledby="quality-chart-title quality-chart-desc"', page)
    assert '<title id="quality-chart-title">Quality per field</title>' in page
    assert "Show the data as a table" in page
    dob = re.search(r'<th scope="row" class="govuk-table__header">date_of_birth</th>\s*'
                    r'<td[^>]*>(\d+)%</td>\s*<td[^>]*>(\d+)%</td>', page)
    assert dob and dob.groups() == ("100", "67"), "two of three dates of birth are valid"
    # The audit trail of this holding: its import, newest first after the views.
    trail = page[page.index('id="audit-trail"'):]
    assert "holding.import" in trail and "rita" in trail
    report = node.quality(Actor(NORTH, "rita", Role.RECORDS_MANAGER), hid)
    assert f"Score: <strong>{report.score} out of 100</strong>" in page
    listing = page_html(client.get("/web/holdings"))
    assert f'href="/web/holdings/{hid}">people</a>' in listing


def test_a_suggested_mapping_is_reviewed_then_imported(client: TestClient, node: Node) -> None:
    token = sign_in(client, "rita")
    common = {"csrf_token": token, "name": "people", "classification": "OFFICIAL", "schema": "person",
              "policy": "flag", "encoding": "auto"}
    files = {"dataset": ("people.csv", PEOPLE_CSV.encode(), "text/csv")}
    review = page_html(client.post("/web/holdings/import/dataset", data={**common, "mapping": "suggest"},
                                   files=files))
    assert "Check the suggested mapping" in review and "REVIEW" in review
    suggested = html.unescape(re.search(r'<textarea[^>]*name="mapping_text"[^>]*>(.*?)</textarea>', review,
                                        re.S).group(1))
    assert "first_name" in suggested
    assert node.list_holdings(Actor(NORTH, "rita", Role.RECORDS_MANAGER)) == []  # nothing imported yet
    assert hidden(review, "mapping") == "text" and hidden(review, "schema") == "person"
    # Reviewed: the person uses the mapping they checked, and chooses the file again.
    hid = holding_id(client.post("/web/holdings/import/dataset",
                                 data={**common, "mapping": "text", "mapping_text": PEOPLE_MAPPING}, files=files))
    held = node.holding(Actor(NORTH, "rita", Role.RECORDS_MANAGER), hid)
    assert held.rows == 3 and held.schema and held.schema.startswith("person@")
    # A broken mapping comes back on the review page, by the text area, with nothing imported.
    broken = page_html(client.post("/web/holdings/import/dataset",
                                   data={**common, "mapping": "text", "mapping_text": "fields: [nonsense"},
                                   files=files), 422)
    assert broken.startswith("<!DOCTYPE html>") and "<title>Error: Check the suggested mapping" in broken
    assert 'id="mapping_text-error"' in broken
    assert len(node.list_holdings(Actor(NORTH, "rita", Role.RECORDS_MANAGER))) == 1


def test_form_errors_follow_the_govuk_pattern(client: TestClient, node: Node) -> None:
    token = sign_in(client, "rita")
    answer = client.post("/web/holdings/import/dataset",
                         data={"csrf_token": token, "name": "x", "classification": "SECRET", "schema": "",
                               "mapping": "suggest", "policy": "flag", "encoding": "auto"},
                         files={"dataset": ("", b"", "application/octet-stream")})
    page = page_html(answer, 400)
    assert "<title>Error: Import a dataset" in page
    summary = page[page.index('class="govuk-error-summary"'):]
    for field in ("dataset", "classification", "schema"):
        assert f'href="#{field}"' in summary, field
        assert f'id="{field}-error"' in page, field
    # A file the core refuses: every problem is listed, and nothing is stored.
    ragged = "resident_id,name,postcode\nR1,Ada Lovelace,NW1 1AA\nR2,Alan Turing\n"
    refused = page_html(import_csv(client, token, ragged), 422)
    assert 'id="dataset-error"' in refused and "line 3" in refused
    assert node.list_holdings(Actor(NORTH, "rita", Role.RECORDS_MANAGER)) == []
    assert blobs(node.layout.home) == []
    # The question page of the GET form.
    assert page_html(client.get("/web/holdings/import?kind=nothing"), 400).count('href="#kind"') == 1
    assert client.get("/web/holdings/import?kind=document").headers["location"] == "/web/holdings/import/document"


def test_documents_stream_in_and_export_as_sent(client: TestClient, node: Node) -> None:
    token = sign_in(client, "carl")
    document = os.urandom(3 * 1024 * 1024 + 17)
    answer = client.post("/web/holdings/import/document",
                         data={"csrf_token": token, "title": "Letter to Ada", "classification": "OFFICIAL"},
                         files={"document": ("letter.pdf", document, "application/pdf")})
    hid = holding_id(answer)
    page = page_html(client.get(f"/web/holdings/{hid}"))
    assert "Letter to Ada" in page and "application/pdf" in page
    # The fixity of exactly what streamed in through the upload.
    assert "Fixity (SHA-256)" in page and hashlib.sha256(document).hexdigest() in page
    assert "Audit trail" not in page and "Shred" not in page  # a caseworker sees neither
    export = page_html(client.get(f"/web/holdings/{hid}/export"))
    download = client.post(f"/web/holdings/{hid}/export", data={"csrf_token": hidden(export, "csrf_token")})
    assert download.status_code == 200
    assert download.content == document
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith('attachment; filename="Letter to Ada"')
    # A document without a file, or with a tampered classification, is refused by the field.
    empty = page_html(client.post("/web/holdings/import/document",
                                  data={"csrf_token": token, "title": "", "classification": "OFFICIAL"},
                                  files={"document": ("", b"", "application/octet-stream")}), 400)
    assert 'href="#document"' in empty
    odd = page_html(client.post("/web/holdings/import/document",
                                data={"csrf_token": token, "title": "", "classification": "TOP"},
                                files={"document": ("a.txt", b"some text", "text/plain")}), 400)
    assert 'href="#classification"' in odd
    assert len(node.list_holdings(Actor(NORTH, "carl", Role.CASEWORKER))) == 1


def test_export_in_every_format(client: TestClient) -> None:
    token = sign_in(client, "rita")
    hid = holding_id(import_csv(client, token))
    page = page_html(client.get(f"/web/holdings/{hid}/export"))
    assert "The download is not encrypted" in page
    got = {}
    for fmt in ("csv", "jsonl", "parquet", "xlsx"):
        answer = client.post(f"/web/holdings/{hid}/export", data={"csrf_token": token, "format": fmt})
        assert answer.status_code == 200, answer.text[:2000]
        assert f'filename="residents.{fmt}"' in answer.headers["content-disposition"]
        got[fmt] = answer.content
    assert "Ada Lovelace" in got["csv"].decode()
    assert json.loads(got["jsonl"].decode().splitlines()[1])["name"] == "Alan Turing"
    assert got["parquet"][:4] == b"PAR1"
    assert "xl/worksheets/sheet1.xml" in zipfile.ZipFile(io.BytesIO(got["xlsx"])).namelist()
    missing = page_html(client.post(f"/web/holdings/{hid}/export", data={"csrf_token": token}), 400)
    assert 'href="#format"' in missing


def test_shred_asks_for_confirmation_and_only_roles_that_may(client: TestClient, node: Node) -> None:
    token = sign_in(client, "rita")
    hid = holding_id(import_csv(client, token))
    assert len(blobs(node.layout.home)) == 1
    with TestClient(client.app, follow_redirects=False) as caseworker:
        cw_token = sign_in(caseworker, "carl")
        refused = page_html(caseworker.get(f"/web/holdings/{hid}/shred"), 403)
        assert "caseworker" in refused
        page_html(caseworker.post(f"/web/holdings/{hid}/shred", data={"csrf_token": cw_token, "confirm": "yes"}),
                  403)
    confirm = page_html(client.get(f"/web/holdings/{hid}/shred"))
    assert "Are you sure you want to shred this holding?" in confirm and "govuk-button--warning" in confirm
    unconfirmed = page_html(client.post(f"/web/holdings/{hid}/shred", data={"csrf_token": token}), 400)
    assert 'href="#confirm"' in unconfirmed and len(blobs(node.layout.home)) == 1
    done = client.post(f"/web/holdings/{hid}/shred", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303 and done.headers["location"] == f"/web/holdings/{hid}?done=shredded"
    page = page_html(client.get(done.headers["location"]))
    assert "The holding was shredded" in page and "can never be read again" in page
    assert blobs(node.layout.home) == []
    entries = node.audit_entries(Actor(NORTH, "rita", Role.RECORDS_MANAGER), obj=hid)
    assert [e.action for e in entries].count("holding.shred") == 1


def test_forms_without_the_csrf_token_are_refused_and_store_nothing(client: TestClient, node: Node) -> None:
    sign_in(client, "rita")
    forged = client.post("/web/holdings/import/dataset", data={"csrf_token": "forged", "name": "x"},
                         files={"dataset": ("x.csv", CSV.encode(), "text/csv")})
    assert "This form has expired or was not sent from civicshare" in page_html(forged, 403)
    missing = client.post("/web/holdings/import/document", data={"title": "x"},
                          files={"document": ("x.txt", b"hello", "text/plain")})
    page_html(missing, 403)
    # A form that is not multipart at all is refused as forged too, before anything else.
    page_html(client.post("/web/holdings/import/dataset", data={"name": "x"}), 403)
    assert node.list_holdings(Actor(NORTH, "rita", Role.RECORDS_MANAGER)) == []
    assert blobs(node.layout.home) == []
    refused = node.audit_entries(Actor(NORTH, "rita", Role.RECORDS_MANAGER), by="rita")
    assert [e.action for e in refused].count("web.csrf_refused") == 3


def test_a_document_upload_cut_short_stores_nothing(client: TestClient, node: Node) -> None:
    token = sign_in(client, "rita")
    body = b"".join(multipart({"csrf_token": token, "title": "", "classification": "OFFICIAL"}, "document",
                               "cut.bin", iter([os.urandom(512 * 1024)])))
    cut = body[:-len(f"\r\n--{BOUNDARY}--\r\n")]  # the form never ends
    answer = client.post("/web/holdings/import/document", content=cut,
                         headers=MULTIPART)
    page = page_html(answer, 400)
    assert "The upload was interrupted before it finished; nothing was stored." in page
    assert node.list_holdings(Actor(NORTH, "rita", Role.RECORDS_MANAGER)) == []
    assert blobs(node.layout.home) == []
    # Not multipart at all: refused in words.
    plain = client.post("/web/holdings/import/document", data={"csrf_token": token})
    assert "must be sent as multipart/form-data" in page_html(plain, 400)


def test_another_organisations_holding_is_not_found(client: TestClient) -> None:
    token = sign_in(client, "rita")
    hid = holding_id(import_csv(client, token))
    with TestClient(client.app, follow_redirects=False) as south:
        south_token = sign_in(south, "sam", SOUTH)
        for path in (f"/web/holdings/{hid}", f"/web/holdings/{hid}/export", f"/web/holdings/{hid}/shred"):
            page_html(south.get(path), 404)
        page_html(south.post(f"/web/holdings/{hid}/export", data={"csrf_token": south_token, "format": "csv"}),
                  404)
        assert hid not in south.get("/web/holdings").text
        assert 'id="holdings-count">0<' in south.get("/web/").text
    assert client.get("/web/holdings/new").status_code == 404
    assert client.get("/web/holdings/import/dataset").status_code == 200


def test_the_dashboard_counts_holdings_and_charts_transfers(client: TestClient, node: Node) -> None:
    token = sign_in(client, "rita")
    holding_id(import_csv(client, token))
    page = page_html(client.get("/web/"))
    assert 'id="holdings-count">1<' in page
    assert "Transfers in flight" in page and "Recent deliveries and refusals" in page
    assert "Agreements needing review" in page
    assert re.search(r'<svg[^>]*role="img"[^>]*aria-labelledby="transfers-chart-title transfers-chart-desc"', page)
    assert "<title id=\"transfers-chart-title\">Transfers per day, last 14 days</title>" in page
    assert '<th scope="col" class="govuk-table__header govuk-table__header--numeric">Sent</th>' in page
    # A caseworker cannot read the ledger: the chart shows what arrived only, and no share button.
    with TestClient(client.app, follow_redirects=False) as caseworker:
        sign_in(caseworker, "carl")
        theirs = page_html(caseworker.get("/web/"))
        assert ">Received</th>" in theirs and ">Sent</th>" not in theirs
        assert "Share a holding" not in theirs
