"""Importing XLSX and JSON Lines."""

from __future__ import annotations

from datetime import date, datetime, time

import openpyxl

from civicshare.holdings.sources import json_cell, xlsx_cell
from civicshare.holdings.tabular import read_rows


def test_xlsx_first_sheet_cells_as_text(tmp_path, do_import, store, key):
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "inbox" / "residents.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["resident_id", "nhs_number", "born", "seen", "score", "ok", "note"])
    sheet.append([1, "0123456789", date(1980, 2, 29), datetime(2024, 5, 1, 9, 30), 2.5, True, "a note, with a comma"])
    sheet.append([2.0, "0987654321", None, None, 10, False, "line 1\nline 2"])
    sheet.append([])  # blank rows are skipped
    sheet.append([3, "", None, None, None, None, None])
    book.create_sheet("ignored").append(["other", "sheet"])
    book.save(path)

    info = do_import(path)
    assert info.format == "xlsx"
    assert info.encoding == "n/a"
    assert info.rows == 3
    assert info.source_size == path.stat().st_size
    columns, rows = read_rows(store / "table.parquet", key)
    assert columns == ["resident_id", "nhs_number", "born", "seen", "score", "ok", "note"]
    assert rows == [
        ("1", "0123456789", "1980-02-29", "2024-05-01T09:30:00", "2.5", "TRUE", "a note, with a comma"),
        ("2", "0987654321", None, None, "10", "FALSE", "line 1\nline 2"),
        ("3", None, None, None, None, None, None),
    ]


def test_xlsx_trailing_empty_header_cells_are_ignored_and_short_rows_padded(tmp_path, do_import, store, key):
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "inbox" / "short.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"], sheet["B1"] = "id", "name"
    sheet["A2"] = "1"
    sheet["E2"] = None
    sheet["A3"], sheet["B3"] = "2", "Bob"
    book.save(path)
    do_import(path)
    assert read_rows(store / "table.parquet", key) == (["id", "name"], [("1", None), ("2", "Bob")])


def test_xlsx_cell_conversion():
    assert xlsx_cell(None) is None
    assert xlsx_cell("") is None
    assert xlsx_cell(7) == "7"
    assert xlsx_cell(7.0) == "7"
    assert xlsx_cell(0.1) == "0.1"
    assert xlsx_cell(datetime(2020, 1, 2)) == "2020-01-02"
    assert xlsx_cell(datetime(2020, 1, 2, 3, 4, 5)) == "2020-01-02T03:04:05"
    assert xlsx_cell(time(13, 5)) == "13:05:00"


def test_jsonl_union_of_keys_in_first_seen_order(write, do_import, store, key):
    text = (
        '{"id": "001", "name": "Ann", "age": 41}\n'
        "\n"
        '{"id": "002", "email": "b@example.org", "age": 3.50, "flags": [1, {"a": null}], "active": true}\n'
        '{"name": null, "id": "003", "note": "caf\\u00e9 \\"quoted\\", comma"}\n'
    )
    info = do_import(write("people.jsonl", text))
    assert info.format == "jsonl"
    assert info.encoding == "utf-8"
    assert info.columns == ["id", "name", "age", "email", "flags", "active", "note"]
    assert read_rows(store / "table.parquet", key)[1] == [
        ("001", "Ann", "41", None, None, None, None),
        ("002", None, "3.50", "b@example.org", '[1,{"a":null}]', "true", None),
        ("003", None, None, None, None, None, 'café "quoted", comma'),
    ]


def test_jsonl_windows_1252(write, do_import, store, key):
    info = do_import(write("legacy.ndjson", '{"amount": "€5"}\n'.encode("cp1252")))
    assert info.encoding == "windows-1252"
    assert read_rows(store / "table.parquet", key)[1] == [("€5",)]


def test_json_cell_conversion():
    assert json_cell(None) is None
    assert json_cell("") is None
    assert json_cell(True) == "true"
    assert json_cell({"b": [1, "x"]}) == '{"b":[1,"x"]}'
