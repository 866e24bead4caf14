"""Mappings: parsed with every problem at once (file, line, field path), compiled into one DuckDB
SELECT, and run over realistic messy council exports into hand-written expectations."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook

from civicshare.errors import InvalidInput, Problem, TooLarge, UsageError
from civicshare.holdings.duck import sql_ident
from civicshare.holdings.tabular import import_table, read_rows
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.mapping import Mapping, compile_select, parse_mapping, schema_name
from civicshare.schemas.model import Schema
from civicshare.schemas.transforms import Context
from civicshare.schemas.validators_sql import sql_normalise

TODAY = date(2026, 11, 22)
CTX = Context(TODAY, sql_normalise)
PERSON = SchemaCatalog(None).get("person")
FIELDS = [f.name for f in PERSON.fields]

MAPPING = """\
version: 1
schema: person
fields:
  first_name:
    from: Name
    transforms: [{split_name: first}, title]
  middle_names:
    from: Name
    transforms: [{split_name: middle}, title]
  last_name:
    from: Name
    transforms: [{split_name: last}, title]
  date_of_birth:
    from: DOB
    transforms:
      - trim
      - date: [dd/mm/yyyy, dd/mm/yy, yyyy-mm-dd, excel]
  postcode: {from: Post Code, transforms: [trim, postcode]}
  phone: {from: Tel, transforms: [trim, phone]}
  nhs_number: {from: NHS No, transforms: [nhs_number]}
  town: {constant: North Wold}
"""

# A Windows-1252 export from a council case system: one name column, ragged dates (dd/mm/yyyy,
# d/m/yy, ISO, an Excel serial, an impossible 31 February), postcodes in any case with and without
# the space, phone numbers in three styles.
EXPORT = (
    "Client ID,Name,DOB,Post Code,Tel,NHS No\r\n"
    '1001,"SMITH, Zoë Anne",03/04/1980,nw1 4ab,01632 960 123,943 476 5919\r\n'
    "1002,Mrs Chloë O'Brien-Jones,3/4/59,Nw14Ab,+44 (0)1632 960124,\r\n"
    "1003,  jOHN   smith ,29317,,07700900123,9434765870\r\n"
    "1004,Renée Dupont,1980-04-03,SW1A1AA,,\r\n"
    "1005,IAN,31/02/1980, sw1a 1aa ,,\r\n"
)


def _row(**values: str | None) -> tuple[str | None, ...]:
    unknown = set(values) - set(FIELDS)
    assert not unknown, unknown
    return tuple(values.get(f) for f in FIELDS)


EXPECTED = [
    _row(first_name="Zoë", middle_names="Anne", last_name="Smith", date_of_birth="1980-04-03",
         nhs_number="9434765919", town="North Wold", postcode="NW1 4AB", phone="+441632960123"),
    _row(first_name="Chloë", last_name="O'Brien-Jones", date_of_birth="1959-04-03", town="North Wold",
         postcode="NW1 4AB", phone="+441632960124"),
    _row(first_name="John", last_name="Smith", date_of_birth="1980-04-06", nhs_number="9434765870",
         town="North Wold", phone="+447700900123"),
    _row(first_name="Renée", last_name="Dupont", date_of_birth="1980-04-03", town="North Wold",
         postcode="SW1A 1AA"),
    _row(last_name="Ian", date_of_birth="31/02/1980", town="North Wold", postcode="SW1A 1AA"),
]


def run(mapping: str | Mapping, columns: Sequence[str], rows: Sequence[Sequence[str | None]],
        schema: Schema = PERSON) -> list[tuple[str | None, ...]]:
    """The rows ``mapping`` makes of ``rows`` (every column text), through the compiled SELECT."""
    parsed = parse_mapping(mapping, filename="m.yaml") if isinstance(mapping, str) else mapping
    select = compile_select(parsed, schema, list(columns), CTX)
    con = duckdb.connect()
    cols = ", ".join(sql_ident(c) + " VARCHAR" for c in columns)
    con.execute(f"CREATE TABLE raw ({cols})")
    if rows:
        con.executemany(f"INSERT INTO raw VALUES ({', '.join('?' for _ in columns)})", [list(r) for r in rows])
    return [tuple(r) for r in con.execute(f"SELECT {select} FROM raw").fetchall()]


def one_field(spec: str, values: Sequence[str | None], column: str = "c") -> list[str | None]:
    """A mapping filling last_name (required) from ``column`` with ``spec`` (a YAML flow map)."""
    text = (f"version: 1\nschema: person\nfields:\n  last_name: {spec}\n  first_name: {{constant: x}}\n"
            "  date_of_birth: {constant: x}\n")
    got = run(text, [column], [[v] for v in values])
    return [r[FIELDS.index("last_name")] for r in got]


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


def test_a_windows_1252_export_maps_to_the_hand_written_rows(tmp_path: Path, key: bytes) -> None:
    source = tmp_path / "clients.csv"
    source.write_bytes(EXPORT.encode("windows-1252"))
    mapping = parse_mapping(MAPPING, filename="clients.yaml")
    dest = tmp_path / "t.parquet"

    def shape(columns: list[str]) -> tuple[str, list[str]]:
        return compile_select(mapping, PERSON, columns, CTX), FIELDS

    info = import_table(source, dest, key, shape=shape)
    assert (info.rows, info.encoding, info.columns) == (5, "windows-1252", FIELDS)
    assert info.source_columns == ["Client ID", "Name", "DOB", "Post Code", "Tel", "NHS No"]
    columns, rows = read_rows(dest, key)
    assert columns == FIELDS
    assert rows == EXPECTED


def test_an_xlsx_export_with_real_dates_and_serial_numbers(tmp_path: Path, key: bytes) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Full Name", "Date of Birth", "Postcode"])
    sheet.append(["Zoë Smith", date(1980, 4, 3), "nw14ab"])
    sheet.append(["PATEL, Anil Kumar", 21600, "NW1 4AB"])  # a serial number, not formatted as a date
    sheet.append(["Ann Lee", "03/04/1980", None])
    source = tmp_path / "clients.xlsx"
    book.save(source)
    mapping = parse_mapping("""\
version: 1
schema: person
fields:
  first_name: {from: Full Name, transforms: [{split_name: first}]}
  middle_names: {from: Full Name, transforms: [{split_name: middle}]}
  last_name: {from: Full Name, transforms: [{split_name: last}, title]}
  date_of_birth: {from: Date of Birth, transforms: [{date: [yyyy-mm-dd, excel, dd/mm/yyyy]}]}
  postcode: {from: Postcode, transforms: [postcode]}
""", filename="m.yaml")
    info = import_table(source, tmp_path / "t.parquet", key,
                        shape=lambda cols: (compile_select(mapping, PERSON, cols, CTX), FIELDS))
    assert info.rows == 3
    _, rows = read_rows(tmp_path / "t.parquet", key)
    assert rows == [
        _row(first_name="Zoë", last_name="Smith", date_of_birth="1980-04-03", postcode="NW1 4AB"),
        _row(first_name="Anil", middle_names="Kumar", last_name="Patel", date_of_birth="1959-02-19",
             postcode="NW1 4AB"),
        _row(first_name="Ann", last_name="Lee", date_of_birth="1980-04-03"),
    ]


def test_every_problem_is_reported_at_once_with_lines_and_field_paths() -> None:
    text = """\
version: 2
schema: person
colour: blue
fields:
  first_name:
    from: Forename
    transforms:
      - trimm
      - date: dd/qq/yyyy
  shoe_size: {from: Shoe}
  town:
    constant: North Wold
    from: Town
  phone:
    from: Tel
    transforms: [{join: ' '}, {case: shouty}]
  email: {from: Email, extra: 1}
"""
    with pytest.raises(InvalidInput) as caught:
        run(text, ["Forename", "Surname", "Tel"], [])
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {
        (1, "version"),
        (3, "colour"),
        (8, "fields.first_name.transforms[0]"),
        (9, "fields.first_name.transforms[1]"),
        (11, "fields.town"),
        (16, "fields.phone.transforms[0]"),
        (16, "fields.phone.transforms[1]"),
        (17, "fields.email.extra"),
        (17, "fields.email.from"),
        (10, "fields.shoe_size"),
        (4, "fields"),  # last_name and date_of_birth are required and not filled
    }
    assert all(p.file == "m.yaml" for p in caught.value.problems)
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "'trimm' is not a transform" in messages
    assert "'dd/qq/yyyy' is not a date format" in messages
    assert "has no column 'Forename'" not in messages  # it exists
    assert "has no column 'Email'" in messages
    assert "person has no field 'shoe_size'" in messages
    assert "requires 'last_name'" in messages and "requires 'date_of_birth'" in messages
    assert "join needs several columns" in messages and "case must be upper, lower or title" in messages
    assert str(caught.value).startswith("m.yaml cannot be used: 12 problems found")


def test_the_source_file_is_named_for_a_missing_column() -> None:
    mapping = parse_mapping("version: 1\nschema: person\nfields:\n  last_name: {from: Surname}\n"
                            "  date_of_birth: {from: DOB}\n  first_name: {from: Forename}\n", filename="m.yaml")
    with pytest.raises(InvalidInput) as caught:
        compile_select(mapping, PERSON, ["Surname", "D.O.B.", "Forename"], CTX, source_label="clients.csv")
    [problem] = caught.value.problems
    assert problem == Problem("clients.csv has no column 'DOB'; its columns are 'Surname', 'D.O.B.', 'Forename'",
                              file="m.yaml", line=5, field="fields.date_of_birth.from")
    # Compiling again reports the same problems, once each.
    with pytest.raises(InvalidInput) as again:
        compile_select(mapping, PERSON, ["Surname", "D.O.B.", "Forename"], CTX, source_label="clients.csv")
    assert len(again.value.problems) == 1


@pytest.mark.parametrize(("text", "message"), [
    ("version: 1\nfields: [a\n", "is not valid YAML"),
    ("version: 1\nversion: 1\n", "written a second time"),
    (b"version: 1\nschema: \xff\n", "not UTF-8"),
])
def test_text_that_is_not_a_mapping_is_refused_with_its_line(text: str | bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mapping(text, filename="m.yaml")
    assert message in str(caught.value) or any(message in p.message for p in caught.value.problems)


def test_a_huge_mapping_is_refused() -> None:
    with pytest.raises(TooLarge):
        parse_mapping("#" * 1_000_001)


def test_the_schema_comes_from_the_option_or_the_mapping_and_must_agree() -> None:
    mapping = parse_mapping("version: 1\nschema: address\nfields:\n  uprn: {from: UPRN}\n")
    assert schema_name(None, mapping) == "address"
    assert schema_name("person@1.0.0", None) == "person"
    with pytest.raises(UsageError):
        schema_name(None, parse_mapping("version: 1\nfields:\n  uprn: {from: UPRN}\n"))
    with pytest.raises(InvalidInput) as caught:
        compile_select(mapping, PERSON, ["UPRN"], CTX)
    assert any(p.field == "schema" and "names 'address'" in p.message for p in caught.value.problems)
    old = parse_mapping("version: 1\nschema: person@0.9.0\nfields:\n  last_name: {from: a}\n"
                        "  first_name: {from: a}\n  date_of_birth: {from: a}\n")
    with pytest.raises(InvalidInput) as caught:
        compile_select(old, PERSON, ["a"], CTX)
    assert "version 0.9.0" in caught.value.problems[0].message


def test_without_a_mapping_the_columns_must_be_the_field_names() -> None:
    select = compile_select(None, PERSON, ["last_name", "first_name", "date_of_birth", "postcode"], CTX)
    con = duckdb.connect()
    con.execute("CREATE TABLE raw AS SELECT 'Smith' AS last_name, 'Zoë' AS first_name, "
                "'1980-04-03' AS date_of_birth, 'nw1 4ab' AS postcode")
    [row] = con.execute(f"SELECT {select} FROM raw").fetchall()
    # Kept as written (no transforms without a mapping), in the schema's order; the rest are NULL.
    assert row == _row(first_name="Zoë", last_name="Smith", date_of_birth="1980-04-03", postcode="nw1 4ab")
    with pytest.raises(InvalidInput) as caught:
        compile_select(None, PERSON, ["Surname", "first_name", "Shoe"], CTX, source_label="x.csv")
    messages = [p.message for p in caught.value.problems]
    assert any("'Surname', 'Shoe'" in m for m in messages)
    assert {p.field for p in caught.value.problems} >= {"last_name", "date_of_birth"}


# Transforms one by one -------------------------------------------------------------------------


def test_trim_and_case() -> None:
    values = ["  smith ", "   ", None, "O'BRIEN-JONES", "mcdonald"]
    assert one_field("{from: c, transforms: [trim]}", values) == ["smith", None, None, "O'BRIEN-JONES", "mcdonald"]
    assert one_field("{from: c, transforms: [trim, upper]}", values)[0] == "SMITH"
    assert one_field("{from: c, transforms: [lower]}", values)[3] == "o'brien-jones"
    assert one_field("{from: c, transforms: [{case: title}]}", values) == [
        "  Smith ", "   ", None, "O'Brien-Jones", "Mcdonald"]


@pytest.mark.parametrize(("name", "first", "middle", "last"), [
    ("Zoë Smith", "Zoë", None, "Smith"),
    ("Zoë  Anne Marie   Smith", "Zoë", "Anne Marie", "Smith"),
    ("SMITH, Zoë Anne", "Zoë", "Anne", "SMITH"),
    ("Smith,Zoë", "Zoë", None, "Smith"),
    ("Mrs. Zoë Smith", "Zoë", None, "Smith"),
    ("Dr Anil Kumar Patel", "Anil", "Kumar", "Patel"),
    ("Madonna", None, None, "Madonna"),
    ("  ", None, None, None),
    (None, None, None, None),
])
def test_split_name(name: str | None, first: str | None, middle: str | None, last: str | None) -> None:
    mapping = ("version: 1\nschema: person\nfields:\n"
               + "".join(f"  {f}: {{from: Name, transforms: [{{split_name: {p}}}]}}\n"
                         for f, p in (("first_name", "first"), ("middle_names", "middle"), ("last_name", "last")))
               + "  date_of_birth: {constant: '1980-01-01'}\n")
    [row] = run(mapping, ["Name"], [[name]])
    assert row[:3] == (first, middle, last)


def test_join_skips_empty_parts() -> None:
    text = ("version: 1\nschema: person\nfields:\n  last_name: {from: [A, B, C], transforms: [{join: ', '}]}\n"
            "  first_name: {from: [A, B]}\n  date_of_birth: {constant: x}\n")
    got = run(text, ["A", "B", "C"], [["1 High St", None, " Flat 2 "], [None, "  ", None]])
    assert [(r[0], r[2]) for r in got] == [("1 High St", "1 High St, Flat 2"), (None, None)]


@pytest.mark.parametrize(("formats", "value", "expected"), [
    ("dd/mm/yyyy", "03/04/1980", "1980-04-03"),
    ("dd/mm/yyyy", "3/4/1980", "1980-04-03"),
    ("dd/mm/yyyy", "03/04/1980 00:00:00", "1980-04-03"),
    ("dd/mm/yyyy", "3/4/59", "3/4/59"),  # a four-digit year was promised: kept as written
    ("dd/mm/yy", "3/4/59", "1959-04-03"),  # two-digit years are the most recent past year
    ("dd/mm/yy", "22/11/26", "2026-11-22"),
    ("dd/mm/yy", "23/11/26", "1926-11-23"),
    ("dd-mm-yyyy", "03-04-1980", "1980-04-03"),
    ("dd mmm yyyy", "3 Apr 1980", "1980-04-03"),
    ("yyyy-mm-dd", "1980-04-03", "1980-04-03"),
    ("mm/dd/yyyy", "04/03/1980", "1980-04-03"),
    ("excel", "29317", "1980-04-06"),
    ("excel", "29317.75", "1980-04-06"),
    ("excel", "0", "0"),
    ("excel", "3000000", "3000000"),
    ("[dd/mm/yyyy, excel]", "31/02/1980", "31/02/1980"),  # no format reads it: kept, so it shows as invalid
    ("[dd/mm/yyyy, excel]", "29317", "1980-04-06"),
    ("[yyyy-mm-dd, dd/mm/yyyy]", "not a date", "not a date"),
])
def test_date(formats: str, value: str, expected: str) -> None:
    assert one_field(f"{{from: c, transforms: [{{date: {formats}}}]}}", [value, None]) == [expected, None]


def test_normalisers() -> None:
    assert one_field("{from: c, transforms: [postcode]}", ["nw14ab", " Sw1a 1aa", None]) == [
        "NW1 4AB", "SW1A 1AA", None]
    assert one_field("{from: c, transforms: [nhs_number]}", ["943 476 5919", "943-476-5919"]) == [
        "9434765919", "9434765919"]
    assert one_field("{from: c, transforms: [ni_number]}", ["ab 12 34 56 c"]) == ["AB123456C"]
    assert one_field("{from: c, transforms: [phone]}", ["01632 960 123", "+44 (0)7700 900123"]) == [
        "+441632960123", "+447700900123"]


def test_lookup_and_default() -> None:
    values = ["M", " f ", "x", None]
    assert one_field("{from: c, transforms: [{lookup: {map: {M: male, F: female}}}]}", values) == [
        "male", "female", "x", None]
    assert one_field("{from: c, transforms: [{lookup: {map: {M: male, F: female}, default: unknown}}]}",
                     values) == ["male", "female", "unknown", None]
    assert one_field("{from: c, transforms: [{lookup: {map: {m: male}, ignore_case: false, default: null}}]}",
                     values) == [None, None, None, None]
    assert one_field("{from: c, transforms: [{lookup: {map: {1: 'yes', 0: 'no'}}}]}", ["1", "0"]) == ["yes", "no"]
    assert one_field("{from: c, transforms: [trim, {default: not known}]}", values) == [
        "M", "f", "x", "not known"]


def test_a_value_with_quotes_cannot_break_out_of_the_sql() -> None:
    text = ("version: 1\nschema: person\nfields:\n  last_name: {constant: \"O'Brien'); DROP TABLE raw; --\"}\n"
            "  first_name: {from: \"we\\\"ird\", transforms: [{lookup: {map: {\"a'b\": \"c'd\"}}}]}\n"
            "  date_of_birth: {from: \"we\\\"ird\", transforms: [{default: \"'\"}]}\n")
    [row] = run(text, ['we"ird'], [["a'b"]])
    assert row[:4] == ("c'd", None, "O'Brien'); DROP TABLE raw; --", "a'b")


@pytest.mark.parametrize(("step", "message"), [
    ("{split_name: surname}", "split_name must be first, middle or last"),
    ("split_name", "split_name needs the part"),
    ("{trim: yes}", "trim takes no option"),
    ("{date: []}", "date needs one format"),
    ("{date: [excel, 12]}", "date needs one format"),
    ("{lookup: {M: male}}", "lookup needs a map"),
    ("{lookup: {map: {M: male}, otherwise: x}}", "lookup has no option 'otherwise'"),
    ("{lookup: {map: {M: [a]}}}", "must be a single value"),
    ("{default: [a]}", "default must be a single value"),
    ("{lookup: {map: {Y: yes}}}", "put it in quotes, such as 'yes'"),
    ("{date: dd/mm}", "is not a date format"),
    ("{trim: null, upper: null}", "a transform is a name"),
])
def test_bad_options_are_named(step: str, message: str) -> None:
    text = f"version: 1\nschema: person\nfields:\n  last_name: {{from: c, transforms: [{step}]}}\n"
    with pytest.raises(InvalidInput) as caught:
        run(text, ["c"], [])
    assert any(message in p.message and p.field == "fields.last_name.transforms[0]" and p.line == 4
               for p in caught.value.problems), caught.value.problems
