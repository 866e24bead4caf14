"""node.quality on held datasets (stored on import, or computed and stored), and its CLI and API edges,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.db import tables as t
from civicshare.errors import NotFound, Shredded, UsageError
from civicshare.node import Node
from tests.api.conftest import assert_error, auth
from tests.cli.conftest import Cli, cli, initialised
from tests.conftest import actor, write_csv
from tests.schemas.test_quality import PEOPLE

NORTH, SOUTH = "north-wold", "south-fen"
__all__ = ["cli", "initialised"]  # the CLI fixtures this module uses


def _stored(node: Node, holding_id: str) -> tuple[str | None, str | None, float | None]:
    with node.db.engine.connect() as conn:
        row = conn.execute(select(t.holdings.c.schema, t.holdings.c.quality, t.holdings.c.quality_score)
                           .where(t.holdings.c.id == holding_id)).one()
    return row.schema, row.quality, row.quality_score


def _as_old_import(node: Node, holding_id: str, schema: str | None, quality: str | None = None) -> None:
    """Make the holding look like one imported before reports existed (or received with a summary)."""
    with node.db.engine.begin() as conn:
        conn.execute(update(t.holdings).where(t.holdings.c.id == holding_id)
                     .values(schema=schema, quality=quality, quality_score=None))


def _people(node: Node, tmp_path: Path) -> str:
    return node.import_dataset(actor(NORTH), write_csv(tmp_path / "people.csv", PEOPLE), "People").id


def test_a_missing_report_is_computed_from_the_encrypted_table_and_stored(node: Node, tmp_path: Path) -> None:
    hid = _people(node, tmp_path)
    _as_old_import(node, hid, "person@1.0.0")
    report = node.quality(actor(NORTH), hid)
    # The hand counts of tests/schemas/test_quality.py, now read back from the encrypted Parquet.
    assert (report.rows, report.invalid_rows, report.invalid_row_examples, report.score) == (8, 4, (2, 5, 6, 7), 85.0)
    assert report.schema == "person@1.0.0" and report.identifiers[0].examples == ((1, 3, 4),)
    assert report.checked_on == node.clock().date()
    schema, quality, score = _stored(node, hid)
    assert quality is not None and json.loads(quality) == report.to_json() and score == 85.0
    computed = [e for e in node.audit.entries(NORTH, obj=hid) if e.action == "holding.quality"]
    assert len(computed) == 1 and computed[0].details["score"] == "85"
    # The second time the stored report is read: nothing is computed, no data key is unwrapped.
    unwraps = len([e for e in node.audit.entries(NORTH) if e.action == "key.unwrap"])
    assert node.quality(actor(NORTH), hid) == report
    assert len([e for e in node.audit.entries(NORTH) if e.action == "key.unwrap"]) == unwraps
    assert len([e for e in node.audit.entries(NORTH, obj=hid) if e.action == "holding.quality"]) == 1


def test_the_report_stored_on_import_is_the_one_shown(node: Node, tmp_path: Path) -> None:
    held = node.import_dataset(actor(NORTH), write_csv(tmp_path / "people.csv", PEOPLE), "People", schema="person")
    schema, quality, score = _stored(node, held.id)
    assert schema == "person@1.0.0" and quality is not None
    report = node.quality(actor(NORTH), held.id)
    assert report.to_json() == json.loads(quality) and report.score == score == 85.0


def test_without_a_schema_or_with_one_the_node_lost(node: Node, tmp_path: Path) -> None:
    hid = _people(node, tmp_path)
    _as_old_import(node, hid, "retired_schema@2.0.0")
    report = node.quality(actor(NORTH), hid)
    assert report.schema is None and report.invalid_rows == 0 and report.duplicate_rows.surplus == 1
    assert report.field("last_name").present == 7


def test_a_partners_summary_is_kept_and_the_report_computed_each_time(node: Node, tmp_path: Path) -> None:
    hid = _people(node, tmp_path)
    summary = json.dumps({"version": 1, "score": 99.0, "rows": 8, "invalid_rows": 0, "fields": {}})
    _as_old_import(node, hid, "person@1.0.0", quality=summary)
    assert node.quality(actor(NORTH), hid).score == 85.0
    assert _stored(node, hid)[1] == summary


def test_refusals(node: Node, tmp_path: Path) -> None:
    hid = _people(node, tmp_path)
    with pytest.raises(NotFound):
        node.quality(actor(SOUTH), hid)  # another organisation's holding does not exist for it
    doc = node.import_document(actor(NORTH), BytesIO(b"minutes"), "minutes.txt")
    with pytest.raises(UsageError, match="document"):
        node.quality(actor(NORTH), doc.id)
    _as_old_import(node, hid, None)
    node.shred(actor(NORTH), hid)
    with pytest.raises(Shredded):
        node.quality(actor(NORTH), hid)


def test_api_json_and_html(node: Node, tmp_path: Path) -> None:
    hid = _people(node, tmp_path)
    _as_old_import(node, hid, "person@1.0.0")
    token = node.add_user(NORTH, "cw", Role.CASEWORKER)[1]
    other = node.add_user(SOUTH, "cw", Role.CASEWORKER)[1]
    with TestClient(create_app(node), raise_server_exceptions=False) as client:
        got = client.get(f"/v1/holdings/{hid}/quality", headers=auth(token))
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["score"] == 85.0 and body["invalid_rows"] == 4 and body["version"] == 1
        page = client.get(f"/v1/holdings/{hid}/quality", params={"format": "html"}, headers=auth(token))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        root = ET.fromstring(page.text.split("\n", 1)[1])
        assert "Quality report: People" in "".join(root.itertext())
        assert_error(client.get(f"/v1/holdings/{hid}/quality", params={"format": "pdf"}, headers=auth(token)),
                     400, "usage")
        assert_error(client.get(f"/v1/holdings/{hid}/quality", headers=auth(other)), 404, "not_found")
        assert_error(client.get(f"/v1/holdings/{hid}/quality"), 401, "unauthenticated")


def test_cli_table_json_and_html(initialised: Cli, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "people.csv", PEOPLE)
    imported = initialised("import", str(src), "--dataset", "People", "--schema", "person", "--json")
    assert imported.code == 0, imported.err
    hid = imported.json()["id"]
    shown = initialised("quality", hid)
    assert shown.code == 0, shown.err
    assert "85 out of 100" in shown.out and "8 rows, 4 with a problem" in shown.out
    assert "date_of_birth" in shown.out and "71.4%" in shown.out and "How: " in shown.out
    as_json = initialised("quality", hid, "--json")
    assert as_json.code == 0 and as_json.json()["uniqueness"]["exact_duplicate_rows"]["examples"] == [[1, 3]]
    page = tmp_path / "report.html"
    written = initialised("quality", hid, "--html", str(page))
    assert written.code == 0 and "score 85" in written.out
    ET.fromstring(page.read_text(encoding="utf-8").split("\n", 1)[1])
    again = initialised("quality", hid, "--html", str(page))
    assert again.code == 1 and "already exists" in again.err
    both = initialised("quality", hid, "--json", "--html", str(tmp_path / "other.html"))
    assert both.code == 2 and not (tmp_path / "other.html").exists()
    missing = initialised("quality", "h_nothing")
    assert missing.code == 1 and "Traceback" not in missing.err
