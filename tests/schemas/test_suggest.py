"""``mapping suggest``: a mapping from the headers and a sample of values, which imports as it says."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook

from civicshare.holdings.sampling import sample_rows
from civicshare.holdings.tabular import import_table, read_rows
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.mapping import compile_select, parse_mapping
from civicshare.schemas.suggest import date_formats, suggest_mapping
from civicshare.schemas.transforms import Context
from civicshare.schemas.validators_sql import sql_normalise
from tests.schemas.test_mapping import EXPECTED, EXPORT, FIELDS, PERSON

CTX = Context(date(2026, 11, 22), sql_normalise)


def _fields(text: str) -> dict[str, dict]:
    return yaml.safe_load(text)["fields"]


def test_a_messy_export_gets_a_mapping_that_imports_it(tmp_path: Path) -> None:
    source = tmp_path / "clients.csv"
    source.write_bytes(EXPORT.encode("windows-1252"))
    columns, rows = sample_rows(source)
    assert columns == ["Client ID", "Name", "DOB", "Post Code", "Tel", "NHS No"]
    assert rows[0] == ["1001", "SMITH, Zoë Anne", "03/04/1980", "nw1 4ab", "01632 960 123", "943 476 5919"]
    assert len(rows) == 5
    text = suggest_mapping(columns, rows, PERSON, source_label="clients.csv")
    fields = _fields(text)
    assert fields["first_name"] == {"from": "Name", "transforms": ["trim", {"split_name": "first"}]}
    assert fields["middle_names"]["transforms"] == ["trim", {"split_name": "middle"}]
    assert fields["last_name"]["transforms"] == ["trim", {"split_name": "last"}]
    assert fields["date_of_birth"] == {
        "from": "DOB", "transforms": ["trim", {"date": ["dd/mm/yyyy", "dd/mm/yy", "excel", "yyyy-mm-dd"]}]}
    assert fields["postcode"] == {"from": "Post Code", "transforms": ["trim", "postcode"]}
    assert fields["phone"] == {"from": "Tel", "transforms": ["trim", "phone"]}
    assert fields["nhs_number"] == {"from": "NHS No", "transforms": ["trim", "nhs_number"]}
    assert set(fields) == {"first_name", "middle_names", "last_name", "date_of_birth", "postcode", "phone",
                           "nhs_number"}
    review = [line for line in text.splitlines() if "# REVIEW:" in line]
    assert len(review) == len(fields)
    assert any("'Name' holds whole names" in line for line in review)
    assert "# Columns not mapped: \"Client ID\"" in text
    # Values never appear in the mapping, only headers.
    for value in ("Zoë", "SMITH", "nw1 4ab", "01632", "943 476"):
        assert value not in text
    # It imports: the same rows as the hand-written mapping, apart from the constant town.
    mapping = parse_mapping(text, filename="suggested.yaml")
    key = os.urandom(32)
    import_table(source, tmp_path / "t.parquet", key,
                 shape=lambda cols: (compile_select(mapping, PERSON, cols, CTX), FIELDS))
    _, got = read_rows(tmp_path / "t.parquet", key)
    town = FIELDS.index("town")
    # The case of names is left alone (not all capitals), and the hand mapping's town constant is not guessed.
    assert [r[:town] + r[town + 1:] for r in got] == [
        (e[:town] + e[town + 1:]) for e in [
            ("Zoë", "Anne", "SMITH", *EXPECTED[0][3:]),
            ("Chloë", None, "O'Brien-Jones", *EXPECTED[1][3:]),
            ("jOHN", None, "smith", *EXPECTED[2][3:]),
            EXPECTED[3],
            (None, None, "IAN", *EXPECTED[4][3:]),
        ]]


def test_headers_in_other_words_and_values_that_give_themselves_away(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["FORENAME", "SURNAME", "Date Of Birth", "Ref", "Contact", "Notes"])
    sheet.append(["ZOË", "SMITH", 29317, "AB 12 34 56 C", "zoe@example.org", "x"])
    sheet.append(["ANIL", "PATEL", 21600, "ab123456c", "anil@example.org", None])
    source = tmp_path / "export.xlsx"
    book.save(source)
    columns, rows = sample_rows(source)
    text = suggest_mapping(columns, rows, PERSON, source_label="export.xlsx")
    fields = _fields(text)
    assert fields["first_name"] == {"from": "FORENAME", "transforms": ["trim", "title"]}
    assert fields["last_name"] == {"from": "SURNAME", "transforms": ["trim", "title"]}
    assert fields["date_of_birth"] == {"from": "Date Of Birth", "transforms": ["trim", {"date": ["excel"]}]}
    assert fields["ni_number"] == {"from": "Ref", "transforms": ["trim", "ni_number"]}
    assert fields["email"] == {"from": "Contact", "transforms": ["trim"]}
    assert "the values of 'Ref' look like ni_number" in text
    assert "# Columns not mapped: \"Notes\"" in text
    assert "#   civicshare import FILE --dataset NAME --schema person --mapping THIS_FILE" in text


def test_a_required_field_with_no_column_is_marked() -> None:
    text = suggest_mapping(["Surname"], [["Smith"]], PERSON)
    assert "  # first_name: {from: COLUMN}  # REVIEW: required, but no column matched it" in text
    assert "  # town: {from: COLUMN}  # no column matched it" in text
    assert _fields(text) == {"last_name": {"from": "Surname", "transforms": ["trim"]}}


def test_other_schemas_work_the_same_way() -> None:
    schema = SchemaCatalog(None).get("service_record")
    text = suggest_mapping(["Client ID", "Case Ref", "Start Date", "End Date", "Status", "Team"],
                           [["C1", "R1", "2024-01-31", "", "open", "Housing"]], schema)
    fields = _fields(text)
    assert fields["person_ref"]["from"] == "Client ID"
    assert fields["reference"]["from"] == "Case Ref"
    assert fields["opened"] == {"from": "Start Date", "transforms": ["trim", {"date": ["yyyy-mm-dd"]}]}
    assert fields["closed"]["from"] == "End Date"
    assert fields["service"]["from"] == "Team"


@pytest.mark.parametrize(("values", "formats", "note"), [
    (["03/04/1980", "25/12/1970"], ["dd/mm/yyyy"], None),
    (["03/04/1980", "04/05/1970"], ["dd/mm/yyyy"], "day first (the UK order) is assumed"),
    (["04/25/1980", "04/05/1970"], ["mm/dd/yyyy"], "American dates"),
    (["3-4-80", "25-12-70", "29317"], ["dd-mm-yy", "excel"], None),
    (["1980-04-03", "1980-04-03 00:00"], ["yyyy-mm-dd"], None),
    (["soon", "later", "03/04/1980"], [], None),
])
def test_date_formats_from_values(values: list[str], formats: list[str], note: str | None) -> None:
    import re

    found, said = date_formats([re.sub(r" [0-9:]+$", "", v) for v in values])
    assert found == formats
    assert (note is None and said is None) or (note is not None and said is not None and note in said)
