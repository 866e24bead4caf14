"""Exporting stored tables: four formats, formula neutralisation, conflicts, wrong keys."""

from __future__ import annotations

import csv
import json
import os

import duckdb
import openpyxl
import pytest

from civicshare.errors import Conflict, IntegrityError, NotFound, UsageError
from civicshare.holdings.exporting import neutralise
from civicshare.holdings.tabular import export_table, import_table, read_rows

ROWS = [
    ("0123456789", "Ann", '=HYPERLINK("http://x")', "07700 900123"),
    ("0000000002", 'Bob, "Bobby"', "+44 1234", None),
    ("0000000003", "Cy\nSmith", "-5", "@home"),
    ("0000000004", "Di", "\tindent", "#N/A"),
    ("0000000005", "Ed", "plain", "\rcr"),
]
COLUMNS = ["nhs_number", "name", "note", "phone"]


def as_in_xlsx(rows):
    """XML (so XLSX) stores every line break as LF, as Excel does."""
    return [tuple(v.replace("\r\n", "\n").replace("\r", "\n") if v else v for v in row) for row in rows]


@pytest.fixture
def table(tmp_path, key):
    source = tmp_path / "source.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for row in ROWS:
            f.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")
    dest = tmp_path / "table.parquet"
    import_table(source, dest, key)
    assert read_rows(dest, key) == (COLUMNS, ROWS)
    return dest


@pytest.fixture
def outdir(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


def test_neutralise():
    assert neutralise("=1+1") == "'=1+1"
    assert neutralise("plain") == "plain"
    assert neutralise("") == ""
    for prefix in "=+-@\t\r":
        assert neutralise(prefix + "x") == "'" + prefix + "x"


def test_csv_export_neutralises_formulas(table, key, outdir):
    out = outdir / "people.csv"
    assert export_table(table, key, out, "csv") == len(ROWS)
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.reader(f))
    assert got[0] == COLUMNS
    expected = [[neutralise(v) if v else "" for v in row] for row in ROWS]
    assert got[1:] == expected
    assert got[1][2] == '\'=HYPERLINK("http://x")'
    assert got[3][2] == "'-5"
    assert sorted(p.name for p in outdir.iterdir()) == ["people.csv"]


def test_jsonl_export(table, key, outdir):
    out = outdir / "people.jsonl"
    assert export_table(table, key, out, "jsonl") == len(ROWS)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [tuple(d[c] for c in COLUMNS) for d in lines] == ROWS


def test_parquet_export_is_plain(table, key, outdir):
    out = outdir / "people.parquet"
    assert export_table(table, key, out, "parquet") == len(ROWS)
    con = duckdb.connect()
    assert con.execute(f"SELECT * FROM read_parquet('{out}')").fetchall() == ROWS
    con.close()


def test_xlsx_export_keeps_text_and_never_writes_formulas(table, key, outdir):
    out = outdir / "people.xlsx"
    assert export_table(table, key, out, "xlsx") == len(ROWS)
    book = openpyxl.load_workbook(out)
    sheet = book.worksheets[0]
    cells = [[c for c in row] for row in sheet.iter_rows()]
    assert [c.value for c in cells[0]] == COLUMNS
    assert [tuple(c.value for c in row) for row in cells[1:]] == as_in_xlsx(ROWS)
    assert {c.data_type for row in cells for c in row if c.value is not None} == {"s"}
    assert sorted(p.name for p in outdir.iterdir()) == ["people.xlsx"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
def test_exports_import_back_unchanged(table, key, outdir, tmp_path, fmt):
    out = outdir / f"people.{fmt}"
    export_table(table, key, out, fmt)
    again = tmp_path / "again.parquet"
    import_table(out, again, key)
    columns, rows = read_rows(again, key)
    assert columns == COLUMNS
    if fmt == "csv":
        assert rows == [tuple(neutralise(v) if v else None for v in row) for row in ROWS]
    elif fmt == "xlsx":
        assert rows == as_in_xlsx(ROWS)
    else:
        assert rows == ROWS


def test_existing_output_is_a_conflict_unless_overwriting(table, key, outdir):
    out = outdir / "people.csv"
    out.write_text("keep me")
    with pytest.raises(Conflict):
        export_table(table, key, out, "csv")
    assert out.read_text() == "keep me"
    assert export_table(table, key, out, "csv", overwrite=True) == len(ROWS)
    assert out.read_text() != "keep me"


def test_unknown_export_format(table, key, outdir):
    with pytest.raises(UsageError):
        export_table(table, key, outdir / "people.xls", "xls")
    assert list(outdir.iterdir()) == []


def test_missing_table(tmp_path, key, outdir):
    with pytest.raises(NotFound):
        export_table(tmp_path / "nope.parquet", key, outdir / "x.csv", "csv")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_wrong_key_is_an_integrity_error_and_writes_nothing(table, outdir, fmt):
    wrong = os.urandom(32)
    with pytest.raises(IntegrityError) as caught:
        export_table(table, wrong, outdir / f"people.{fmt}", fmt)
    assert "could not be decrypted" in str(caught.value)
    assert list(outdir.iterdir()) == []
    with pytest.raises(IntegrityError):
        read_rows(table, wrong)


def test_tampered_table_is_an_integrity_error(table, key, outdir):
    data = bytearray(table.read_bytes())
    for position in (8, len(data) // 2, len(data) - 20):
        tampered = bytearray(data)
        tampered[position] ^= 0x20
        table.write_bytes(bytes(tampered))
        with pytest.raises(IntegrityError):
            read_rows(table, key)
        with pytest.raises(IntegrityError):
            export_table(table, key, outdir / "people.csv", "csv")
        assert list(outdir.iterdir()) == []


def test_truncated_or_plain_file_is_an_integrity_error(table, key, tmp_path):
    table.write_bytes(table.read_bytes()[:100])
    with pytest.raises(IntegrityError):
        read_rows(table, key)
    plain = tmp_path / "plain.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'x' AS a) TO '{plain}' (FORMAT parquet)")
    con.close()
    with pytest.raises(IntegrityError):
        read_rows(plain, key)


def test_xlsx_refuses_values_a_cell_cannot_hold(tmp_path, key, outdir):
    source = tmp_path / "ctl.jsonl"
    source.write_text('{"id": "1", "v": "bell\\u0007"}\n{"id": "2", "v": "ok"}\n', encoding="utf-8")
    import_table(source, tmp_path / "t.parquet", key)
    from civicshare.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        export_table(tmp_path / "t.parquet", key, outdir / "t.xlsx", "xlsx")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "v")]
    assert list(outdir.iterdir()) == []
