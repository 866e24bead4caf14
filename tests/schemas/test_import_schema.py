"""Importing into a schema through a mapping, with the flag, quarantine and reject policies, the quality
report stored with the holding -- on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from civicshare.db import tables as t
from civicshare.errors import InvalidInput, NotFound, UsageError
from civicshare.holdings.store import Holding
from civicshare.node import Node
from civicshare.schemas.quality import QualityReport
from tests.conftest import actor
from tests.schemas.test_mapping import EXPECTED, EXPORT, FIELDS, MAPPING

NORTH = "north-wold"
PERSON_KEY = "person@1.0.0"

POLICY_MAPPING = """\
version: 1
schema: person
fields:
  first_name: {from: Name, transforms: [{split_name: first}]}
  last_name: {from: Name, transforms: [{split_name: last}]}
  date_of_birth: {from: DOB, transforms: [{date: dd/mm/yyyy}]}
  postcode: {from: Post Code, transforms: [postcode]}
"""
# Rows 2 to 5 are invalid: an impossible date, a birth in the future, a bad postcode, no first name.
POLICY_CSV = (
    "Name,DOB,Post Code\n"
    "Zoë Smith,03/04/1980,nw1 4ab\n"
    "Ann Lee,31/02/1980,NW1 4AB\n"
    "Bob Jones,03/04/2130,\n"
    "Carl Diaz,01/01/1990,not a postcode\n"
    "Dee,01/01/1990,SW1A1AA\n"
    "Eve Hart,12/12/1950,sw1a 1aa\n"
)
VALID = [("Zoë", "Smith", "1980-04-03", "NW1 4AB"), ("Eve", "Hart", "1950-12-12", "SW1A 1AA")]
INVALID = [("Ann", "Lee", "31/02/1980", "NW1 4AB"), ("Bob", "Jones", "2130-04-03", None),
           ("Carl", "Diaz", "1990-01-01", "NOTAPOSTCODE"), (None, "Dee", "1990-01-01", "SW1A 1AA")]


def _rows(node: Node, holding_id: str, tmp_path: Path, fields: tuple[str, ...] | None = None) -> list[tuple]:
    out = tmp_path / f"{holding_id}.jsonl"
    node.export(actor(NORTH), holding_id, out, "jsonl")
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    names = fields or tuple(FIELDS)
    return [tuple(r.get(f) for f in names) for r in records]


def _blobs(node: Node) -> list[Path]:
    folder = node.layout.blob_dir(NORTH)
    return sorted(folder.iterdir()) if folder.exists() else []


def _import(node: Node, tmp_path: Path, policy: str, text: str = POLICY_CSV) -> Holding:
    source = tmp_path / "people.csv"
    source.write_text(text, "utf-8")
    return node.import_dataset(actor(NORTH), source, "people", schema="person", mapping=POLICY_MAPPING,
                               mapping_label="people.yaml", policy=policy)


def test_a_mapped_windows_1252_export_is_stored_with_its_schema_and_report(node: Node, tmp_path: Path) -> None:
    source = tmp_path / "clients.csv"
    source.write_bytes(EXPORT.encode("windows-1252"))
    holding = node.import_dataset(actor(NORTH), source, "clients", mapping=MAPPING, mapping_label="clients.yaml")
    assert (holding.schema, holding.rows, holding.columns, holding.encoding) == (
        PERSON_KEY, 5, FIELDS, "windows-1252")
    assert _rows(node, holding.id, tmp_path) == EXPECTED
    assert holding.quality is not None and holding.quality_score is not None
    report = QualityReport.loads(holding.quality)
    assert report.score == holding.quality_score
    assert (report.schema, report.rows) == (PERSON_KEY, 5)
    # Row 5: the impossible 31 February is kept as written (so it is invalid) and the first name is missing.
    assert (report.invalid_rows, report.invalid_row_examples) == (1, (5,))
    assert report.field("date_of_birth").examples == (5,)
    assert report.field("first_name").missing == 1
    assert holding.to_json()["schema"] == PERSON_KEY
    assert holding.to_json()["quality_score"] == holding.quality_score
    assert node.quarantine_of(actor(NORTH), holding.id) is None


def test_flag_keeps_every_row_and_the_report_counts_the_invalid_ones(node: Node, tmp_path: Path) -> None:
    holding = _import(node, tmp_path, "flag")
    assert holding.rows == 6
    report = QualityReport.loads(holding.quality)
    assert (report.invalid_rows, report.invalid_row_examples) == (4, (2, 3, 4, 5))
    fields = ("first_name", "last_name", "date_of_birth", "postcode")
    rows = _rows(node, holding.id, tmp_path, fields)
    assert rows == [VALID[0], *INVALID, VALID[1]]


def test_quarantine_makes_two_holdings_whose_rows_add_up(node: Node, tmp_path: Path) -> None:
    holding = _import(node, tmp_path, "quarantine")
    quarantine = node.quarantine_of(actor(NORTH), holding.id)
    assert quarantine is not None
    assert (holding.rows, quarantine.rows) == (2, 4)
    assert quarantine.name == "people (quarantine)" and quarantine.quarantine_of == holding.id
    assert quarantine.schema == holding.schema == PERSON_KEY
    assert quarantine.key_id != holding.key_id
    fields = ("first_name", "last_name", "date_of_birth", "postcode")
    assert _rows(node, holding.id, tmp_path, fields) == VALID
    assert _rows(node, quarantine.id, tmp_path, fields) == INVALID
    kept = QualityReport.loads(holding.quality)
    held = QualityReport.loads(quarantine.quality or "")
    assert (kept.rows, kept.invalid_rows) == (2, 0)
    assert (held.rows, held.invalid_rows, held.invalid_row_examples) == (4, 4, (1, 2, 3, 4))
    assert quarantine.quality_score == held.score and holding.quality_score == kept.score
    # Both holdings, and both data keys, were recorded.
    names = {h.name for h in node.list_holdings(actor(NORTH))}
    assert names == {"people", "people (quarantine)"}
    with node.db.engine.connect() as conn:
        keys = conn.execute(select(t.holdings.c.key_id).where(t.holdings.c.org_id == NORTH)).scalars().all()
    assert sorted(keys) == sorted([holding.key_id, quarantine.key_id])
    assert len(_blobs(node)) == 2


def test_quarantine_of_a_clean_file_makes_one_holding(node: Node, tmp_path: Path) -> None:
    holding = _import(node, tmp_path, "quarantine", "Name,DOB,Post Code\nZoë Smith,03/04/1980,nw1 4ab\n")
    assert holding.rows == 1
    assert node.quarantine_of(actor(NORTH), holding.id) is None
    assert len(node.list_holdings(actor(NORTH))) == 1 and len(_blobs(node)) == 1


def test_reject_stores_nothing_and_names_rows_and_fields(node: Node, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        _import(node, tmp_path, "reject")
    error = caught.value
    assert "is refused under the reject policy, so nothing was stored: 4 of 6 rows are invalid (rows 2, 3, 4, 5)" \
        in str(error)
    problems = {p.field: p.message for p in error.problems}
    assert problems["date_of_birth"].startswith("rows 2, 3:")
    assert problems["postcode"].startswith("row 4:")
    assert problems["first_name"] == "1 row has no value, and the schema requires one"
    assert node.list_holdings(actor(NORTH)) == []
    assert _blobs(node) == []
    # A clean file is accepted under reject.
    holding = _import(node, tmp_path, "reject", "Name,DOB,Post Code\nZoë Smith,03/04/1980,nw1 4ab\n")
    assert holding.rows == 1


def test_every_mapping_problem_is_reported_and_nothing_is_stored(node: Node, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(POLICY_CSV, "utf-8")
    mapping = ("version: 1\nschema: person\nfields:\n  first_name: {from: Forename}\n"
               "  last_name: {from: Name, transforms: [{split_name: surname}]}\n  shoe: {from: Name}\n"
               "  date_of_birth: {from: DOB}\n")
    with pytest.raises(InvalidInput) as caught:
        node.import_dataset(actor(NORTH), source, "people", mapping=mapping, mapping_label="people.yaml")
    assert {(p.file, p.line, p.field) for p in caught.value.problems} == {
        ("people.yaml", 4, "fields.first_name.from"),
        ("people.yaml", 5, "fields.last_name.transforms[0]"),
        ("people.yaml", 6, "fields.shoe"),
    }
    assert node.list_holdings(actor(NORTH)) == [] and _blobs(node) == []


def test_without_a_mapping_the_columns_must_be_the_schema_fields(node: Node, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("last_name,first_name,date_of_birth,postcode\nSmith,Zoë,1980-04-03,NW1 4AB\n", "utf-8")
    holding = node.import_dataset(actor(NORTH), source, "people", schema="person")
    assert holding.columns == FIELDS and holding.schema == PERSON_KEY
    assert _rows(node, holding.id, tmp_path, ("first_name", "last_name", "town", "postcode")) == [
        ("Zoë", "Smith", None, "NW1 4AB")]
    source.write_text("Surname,first_name,Shoe\nSmith,Zoë,9\n", "utf-8")
    with pytest.raises(InvalidInput) as caught:
        node.import_dataset(actor(NORTH), source, "people", schema="person")
    text = " ".join(p.message for p in caught.value.problems)
    assert "'Surname', 'Shoe'" in text and "'last_name'" in text and "'date_of_birth'" in text
    assert len(node.list_holdings(actor(NORTH))) == 1


def test_an_import_without_a_schema_still_gets_a_report(node: Node, tmp_path: Path) -> None:
    source = tmp_path / "plain.csv"
    source.write_text("a,b\n1,\n1,\n2,x\n", "utf-8")
    holding = node.import_dataset(actor(NORTH), source, "plain")
    assert holding.schema is None and holding.columns == ["a", "b"]
    report = QualityReport.loads(holding.quality or "")
    assert report.rows == 3 and report.duplicate_rows.surplus == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"policy": "quarantine"}, "needs a schema"),
    ({"policy": "shred", "schema": "person"}, "Unknown policy 'shred'"),
    ({"schema": "martian"}, "martian"),
])
def test_bad_options_are_refused_before_reading(node: Node, tmp_path: Path, options: dict, message: str) -> None:
    source = tmp_path / "plain.csv"
    source.write_text("a\n1\n", "utf-8")
    with pytest.raises((UsageError, NotFound)) as caught:
        node.import_dataset(actor(NORTH), source, "plain", **options)
    assert message in str(caught.value)
    assert node.list_holdings(actor(NORTH)) == []
