"""The quality report's figures against hand counts on a small person file, its score arithmetic, its
JSON, summary and HTML forms, and the invalid-rows expression the import policies use."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import duckdb
import pytest

from civicshare.errors import IntegrityError
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.quality import QualityReport, invalid_rows_sql, is_report, profile

TODAY = date(2026, 1, 1)
COLUMNS = ["first_name", "middle_names", "last_name", "date_of_birth", "ni_number", "nhs_number",
           "address_line_1", "address_line_2", "address_line_3", "town", "postcode", "uprn", "phone", "email"]
# Eight people, hand-checked (today is 2026-01-01):
# 1 valid. 2 no last name (required) and a bad NI prefix, NHS check digit, postcode, UPRN, phone and e-mail.
# 3 an exact copy of 1. 4 valid, but NHS number of 1 with another date of birth. 5 born in the future.
# 6 no date of birth (required), NI prefix QQ. 7 30 February, and the NI number of 4. 8 valid.
PEOPLE = """first_name,middle_names,last_name,date_of_birth,ni_number,nhs_number,address_line_1,address_line_2,\
address_line_3,town,postcode,uprn,phone,email
Ada,,Lovelace,1980-01-02,AB123456C,9434765919,1 High St,,,Leeds,SW1A 1AA,100023336956,+441632960001,ada@example.org
Bob,,,1975-05-05,BG123456A,9434765918,2 High St,,,Leeds,sw1a1aa,ABC,01632 960001,bob.example.org
Ada,,Lovelace,1980-01-02,AB123456C,9434765919,1 High St,,,Leeds,SW1A 1AA,100023336956,+441632960001,ada@example.org
Cy,,Young,1990-03-04,JG103759A,9434765919,3 Mill Rd,,,York,M1 1AE,,+447700900123,cy@example.org
Dee,Ann,Smith,2030-01-01,,4010232137,,,,,B33 8TH,,,
Eve,,Jones,,QQ123456C,,,,,,,,,
Fay,,Khan,1980-02-30,JG103759A,9876543210,,,,,,,,
Gus,,Patel,1960-07-08,,,,,,,,,,
"""


@pytest.fixture(scope="module")
def person():  # noqa: ANN201 - the catalog's Schema
    return SchemaCatalog(None).get("person")


def _table(con: duckdb.DuckDBPyConnection, tmp: Path, text: str, name: str = "people") -> list[str]:
    path = tmp / f"{name}.csv"
    path.write_text(text, encoding="utf-8")
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', all_varchar=true, header=true)")
    return [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]


@pytest.fixture
def report(person, tmp_path: Path) -> QualityReport:  # noqa: ANN001
    con = duckdb.connect()
    columns = _table(con, tmp_path, PEOPLE)
    assert columns == COLUMNS
    return profile(con, "people", columns, person, today=TODAY)


def test_completeness_and_validity_match_hand_counts(report: QualityReport) -> None:
    assert report.rows == 8 and report.schema == "person@1.0.0" and report.checked_on == TODAY
    expected = {  # field: (present, invalid, first invalid rows)
        "first_name": (8, 0, ()), "middle_names": (1, 0, ()), "last_name": (7, 0, ()),
        "date_of_birth": (7, 2, (5, 7)), "ni_number": (6, 2, (2, 6)), "nhs_number": (6, 1, (2,)),
        "address_line_1": (4, 0, ()), "address_line_2": (0, 0, ()), "address_line_3": (0, 0, ()),
        "town": (4, 0, ()), "postcode": (5, 1, (2,)), "uprn": (3, 1, (2,)), "phone": (4, 1, (2,)),
        "email": (4, 1, (2,)),
    }
    assert [f.name for f in report.fields] == COLUMNS
    for name, (present, invalid, rows) in expected.items():
        f = report.field(name)
        assert (f.present, f.missing, f.invalid, f.examples) == (present, 8 - present, invalid, rows), name
        assert f.completeness == present / 8
    assert report.field("date_of_birth").validity == 5 / 7
    assert report.field("address_line_2").validity is None  # nothing to check
    assert report.field("last_name").required and not report.field("email").required
    assert "check digit" in (report.field("nhs_number").rule or "")
    # Rows 2 (bad values, no last name), 5 (future birth), 6 (no birth date, bad NI) and 7 (30 February).
    assert (report.invalid_rows, report.invalid_row_examples) == (4, (2, 5, 6, 7))


def test_uniqueness_and_consistency_match_hand_counts(report: QualityReport) -> None:
    nhs, ni = report.identifiers
    assert (nhs.field, nhs.values, nhs.distinct, nhs.repeated, nhs.surplus, nhs.examples) == (
        "nhs_number", 6, 4, 1, 2, ((1, 3, 4),))
    assert (ni.field, ni.values, ni.distinct, ni.repeated, ni.examples) == ("ni_number", 6, 4, 2, ((1, 3), (4, 7)))
    dup = report.duplicate_rows
    assert (dup.values, dup.distinct, dup.repeated, dup.surplus, dup.examples) == (8, 7, 1, 1, ((1, 3),))
    by_nhs, by_ni = report.consistency
    # NHS 9434765919 has two dates of birth (rows 1, 3, 4); four NHS numbers have a date of birth.
    assert (by_nhs.identifier, by_nhs.field, by_nhs.identifiers, by_nhs.conflicting, by_nhs.rows,
            by_nhs.examples) == ("nhs_number", "date_of_birth", 4, 1, 3, ((1, 3, 4),))
    # QQ123456C (row 6) has no date of birth, so three NI numbers are checked; JG103759A conflicts.
    assert (by_ni.identifiers, by_ni.conflicting, by_ni.rows, by_ni.examples) == (3, 1, 2, ((4, 7),))


def test_score_is_the_weighted_mean_of_the_parts(report: QualityReport) -> None:
    completeness = (8 / 8 + 7 / 8 + 7 / 8) / 3  # the required fields: first_name, last_name, date_of_birth
    # Twelve fields have a check and a value: five text fields within their length, and the rest.
    validity = (5 * 1 + 5 / 7 + 4 / 6 + 5 / 6 + 4 / 5 + 2 / 3 + 3 / 4 + 3 / 4) / 12
    uniqueness = (4 / 6 + 4 / 6 + 7 / 8) / 3
    consistency = (3 / 4 + 2 / 3) / 2
    parts = report.parts
    assert parts["completeness"] == pytest.approx(completeness)
    assert parts["validity"] == pytest.approx(validity)
    assert parts["uniqueness"] == pytest.approx(uniqueness)
    assert parts["consistency"] == pytest.approx(consistency)
    expected = 100 * (0.4 * completeness + 0.4 * validity + 0.1 * uniqueness + 0.1 * consistency)
    assert report.score == round(expected, 1) == 85.0
    assert "40% completeness" in report.how and "10% consistency" in report.how


def test_json_round_trip_and_summary(report: QualityReport) -> None:
    data = report.to_json()
    assert data["version"] == 1 and is_report(data) and data["score"] == 85.0
    assert data["parts"]["consistency"] == round(100 * (3 / 4 + 2 / 3) / 2, 1)
    again = QualityReport.loads(report.dumps())
    assert again == report and again.to_json() == data
    summary = report.summary()
    assert set(summary) == {"version", "score", "rows", "invalid_rows", "fields"}
    assert (summary["score"], summary["rows"], summary["invalid_rows"]) == (85.0, 8, 4)
    assert summary["fields"]["date_of_birth"] == {"completeness": 0.875, "validity": round(5 / 7, 4)}
    assert summary["fields"]["address_line_2"] == {"completeness": 0.0, "validity": None}
    assert not is_report(summary)
    with pytest.raises(IntegrityError):
        QualityReport.from_json(summary)
    with pytest.raises(IntegrityError):
        QualityReport.loads("{not json")
    broken = dict(data, fields=[{"name": "x"}])
    with pytest.raises(IntegrityError, match="damaged"):
        QualityReport.from_json(broken)


def test_report_holds_no_values_from_the_data(report: QualityReport) -> None:
    text = report.dumps() + report.to_html()
    for value in ("Lovelace", "9434765919", "AB123456C", "SW1A", "ada@example.org", "1980-01-02"):
        assert value not in text


def test_invalid_rows_sql_marks_the_rows_the_report_counts(person, tmp_path: Path) -> None:  # noqa: ANN001
    con = duckdb.connect()
    _table(con, tmp_path, PEOPLE)
    expression = invalid_rows_sql(person, COLUMNS, "DATE '2026-01-01'")
    rows = con.execute(f"SELECT n FROM (SELECT row_number() OVER () AS n, {expression} AS bad FROM people) "
                       "WHERE bad ORDER BY n").fetchall()
    assert [r[0] for r in rows] == [2, 5, 6, 7]
    assert con.execute(f"SELECT count(*) FROM people WHERE ({expression}) IS NULL").fetchone() == (0,)
    # Without a date_of_birth column, a required field is missing from every row.
    without = [c for c in COLUMNS if c != "date_of_birth"]
    assert invalid_rows_sql(person, without) == "(true)"


def test_without_a_schema_only_completeness_and_copies_count(tmp_path: Path) -> None:
    con = duckdb.connect()
    columns = _table(con, tmp_path, "a,b\n1,x\n1,x\n,y\n2,\n")
    report = profile(con, "people", columns, None, today=TODAY)
    assert report.schema is None and report.invalid_rows == 0 and not report.identifiers
    assert [(f.name, f.present, f.rule, f.validity) for f in report.fields] == [("a", 3, None, None),
                                                                                ("b", 3, None, None)]
    assert (report.duplicate_rows.surplus, report.duplicate_rows.examples) == (1, ((1, 2),))
    assert report.parts["validity"] is None and report.parts["consistency"] is None
    completeness, uniqueness = 6 / 8, 3 / 4  # every field counts when none is required
    assert report.score == round(100 * (40 * completeness + 10 * uniqueness) / 50, 1) == 75.0
    assert "80% completeness" in report.how and "shared out" in report.how


def test_a_required_field_without_a_column_makes_every_row_invalid(person, tmp_path: Path) -> None:  # noqa: ANN001
    con = duckdb.connect()
    columns = _table(con, tmp_path, "first_name,last_name\nAda,Lovelace\nBob,\n")
    report = profile(con, "people", columns, person, today=TODAY, examples=1)
    dob = report.field("date_of_birth")
    assert not dob.in_data and dob.present == 0 and dob.completeness == 0
    assert (report.invalid_rows, report.invalid_row_examples) == (2, (1,))
    assert report.identifiers == () and report.consistency == ()  # no identifier columns to check
    assert report.field("last_name").present == 1


def test_examples_are_capped_and_in_row_order(person, tmp_path: Path) -> None:  # noqa: ANN001
    con = duckdb.connect()
    rows = "".join(f"P{i},Q,2090-01-01\n" for i in range(20))
    columns = _table(con, tmp_path, "first_name,last_name,date_of_birth\n" + rows)
    report = profile(con, "people", columns, person, today=TODAY, examples=3)
    assert report.field("date_of_birth").invalid == 20
    assert report.field("date_of_birth").examples == (1, 2, 3)
    assert report.invalid_row_examples == (1, 2, 3)


def test_html_is_well_formed_self_contained_and_shows_the_figures(report: QualityReport) -> None:
    page = report.to_html(title="Residents <North & South>")
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page.split("\n", 1)[1])  # well-formed: the markup parses as XML
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert root.get("lang") == "en"
    assert root.find("h:head/h:title", ns).text == "Quality report: Residents <North & South>"
    for forbidden in ("<script", "src=", "href=", "@import", "url("):
        assert forbidden not in page
    tables = root.findall(".//h:table", ns)
    assert all(t.find("h:caption", ns) is not None for t in tables) and len(tables) == 4
    cells = ["".join(td.itertext()) for td in root.iter("{http://www.w3.org/1999/xhtml}td")]
    assert "71.4%" in cells  # date_of_birth valid 5 of 7
    assert "5, 7" in cells  # its first invalid rows
    assert "rows 1, 3, 4" in cells  # the NHS number repeated
    text = "".join(root.itertext())
    assert "85 out of 100" in text and "4 (first: 2, 5, 6, 7)" in text
    assert "1 row(s) copy another row" in text
    bars = root.findall(".//{http://www.w3.org/2000/svg}svg")
    assert bars and all(b.get("aria-hidden") == "true" for b in bars)


def test_html_escapes_column_names(tmp_path: Path) -> None:
    con = duckdb.connect()
    columns = _table(con, tmp_path, '"<img src=x onerror=alert(1)>",b\n1,2\n')
    page = profile(con, "people", columns, None, today=TODAY).to_html(title="<script>")
    assert "<img" not in page and "<script" not in page and "&lt;img src=x" in page
    ET.fromstring(page.split("\n", 1)[1])


def test_reading_the_file_once_gives_the_same_report(person, report: QualityReport, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "direct.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    relation = f"read_csv('{path}', all_varchar=true, header=true)"
    con = duckdb.connect()
    for materialise in (True, False):
        assert profile(con, relation, COLUMNS, person, today=TODAY, materialise=materialise) == report


def test_maximum_length_counts_characters_not_bytes(person, tmp_path: Path) -> None:  # noqa: ANN001
    con = duckdb.connect()
    text = f"first_name,last_name\n{'é' * 100},Zoë\n{'é' * 101},Zoë\n{'e' * 101},Zoë\n"
    columns = _table(con, tmp_path, text)
    first = profile(con, "people", columns, person, today=TODAY).field("first_name")
    assert (first.invalid, first.examples) == (2, (2, 3))
    assert "at most 100 characters" in (first.rule or "")


def test_identifier_columns_with_no_values(person, tmp_path: Path) -> None:  # noqa: ANN001
    con = duckdb.connect()
    columns = _table(con, tmp_path, "first_name,last_name,date_of_birth,nhs_number,ni_number\n"
                                    "Ada,Lovelace,1980-01-02,,\nBob,Smith,1981-02-03,,\n")
    report = profile(con, "people", columns, person, today=TODAY)
    nhs = report.identifiers[0]
    assert (nhs.values, nhs.distinct, nhs.repeated, nhs.examples, nhs.uniqueness) == (0, 0, 0, (), 1.0)
    assert [(c.identifiers, c.conflicting) for c in report.consistency] == [(0, 0), (0, 0)]
    assert report.parts["consistency"] is None and report.invalid_rows == 0
