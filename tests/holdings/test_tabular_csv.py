"""Importing CSV: encodings, delimiters, quoting, values kept exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicshare.errors import NotFound, UsageError
from civicshare.holdings.tabular import detect_format, import_table, read_rows

PEOPLE = "nhs_number,name,phone\n0123456789,Ann Smith,07700900123\n9876543210,Bob Jones,\n"


def rows_of(store: Path, key: bytes) -> tuple[list[str], list[tuple[str | None, ...]]]:
    return read_rows(store / "table.parquet", key)


def test_utf8_keeps_text_exactly_and_empty_cells_are_null(write, do_import, store, key):
    info = do_import(write("people.csv", PEOPLE))
    assert info.rows == 2
    assert info.columns == ["nhs_number", "name", "phone"]
    assert info.format == "csv"
    assert info.encoding == "utf-8"
    assert info.source_size == len(PEOPLE.encode())
    assert rows_of(store, key) == (
        ["nhs_number", "name", "phone"],
        [("0123456789", "Ann Smith", "07700900123"), ("9876543210", "Bob Jones", None)],
    )


def test_utf8_with_bom_strips_it_from_the_first_header(write, do_import, store, key):
    info = do_import(write("bom.csv", b"\xef\xbb\xbf" + "id,town\n1,Ystrad Mynach – Caerffili\n".encode()))
    assert info.encoding == "utf-8-sig"
    assert info.columns == ["id", "town"]
    assert rows_of(store, key) == (["id", "town"], [("1", "Ystrad Mynach – Caerffili")])


def test_windows_1252_is_detected_and_transcoded(write, do_import, store, key):
    text = "id,note\n1,Paid €20 for ‘Council Tax’ — “thanks”\n2,Café\n"
    info = do_import(write("legacy.csv", text.encode("cp1252")))
    assert info.encoding == "windows-1252"
    assert rows_of(store, key)[1] == [("1", "Paid €20 for ‘Council Tax’ — “thanks”"), ("2", "Café")]


def test_explicit_latin1(write, do_import, store, key):
    info = do_import(write("latin.csv", "id,name\n1,Zoë Brontë\n".encode("latin-1")), encoding="latin-1")
    assert info.encoding == "latin-1"
    assert rows_of(store, key)[1] == [("1", "Zoë Brontë")]


def test_explicit_cp1252_alias(write, do_import, store, key):
    info = do_import(write("legacy.txt", "id,amount\n1,€5\n".encode("cp1252")), encoding="cp1252")
    assert info.encoding == "windows-1252"
    assert rows_of(store, key)[1] == [("1", "€5")]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters(write, do_import, store, key, delimiter):
    text = f"id{delimiter}name{delimiter}amount\n1{delimiter}Ann{delimiter}1,50\n"
    do_import(write("data.tsv" if delimiter == "\t" else "data.csv", text))
    assert rows_of(store, key) == (["id", "name", "amount"], [("1", "Ann", "1,50")])


def test_quoted_fields_with_delimiters_quotes_and_line_breaks(write, do_import, store, key):
    text = 'id,address,note\r\n1,"Flat 2, 10 High St\r\nAshford","she said ""hi"""\r\n2,,\r\n'
    info = do_import(write("quoted.csv", text))
    assert info.rows == 2
    assert rows_of(store, key)[1] == [
        ("1", "Flat 2, 10 High St\r\nAshford", 'she said "hi"'),
        ("2", None, None),
    ]


def test_header_names_are_trimmed_and_values_keep_spaces(write, do_import, store, key):
    info = do_import(write("spaces.csv", " id , name \n1,  padded  \n"))
    assert info.columns == ["id", "name"]
    assert rows_of(store, key)[1] == [("1", "  padded  ")]


def test_one_column_file_ending_in_blank_lines_gains_no_empty_rows(write, do_import, store, key):
    info = do_import(write("nhs.csv", "nhs_number\r\n0123456789\r\n\r\n9876543210\r\n\r\n\r\n"))
    assert info.rows == 3  # the blank line in the middle is an empty value; those at the end are not
    assert rows_of(store, key)[1] == [("0123456789",), (None,), ("9876543210",)]


def test_row_order_is_kept(write, do_import, store, key):
    body = "".join(f"{i:05d},{(i * 7919) % 1000}\n" for i in range(5000))
    do_import(write("order.csv", "id,v\n" + body))
    rows = rows_of(store, key)[1]
    assert [r[0] for r in rows] == [f"{i:05d}" for i in range(5000)]


def test_read_rows_limit(write, do_import, store, key):
    do_import(write("people.csv", PEOPLE))
    assert read_rows(store / "table.parquet", key, limit=1)[1] == [("0123456789", "Ann Smith", "07700900123")]
    assert read_rows(store / "table.parquet", key, limit=0)[1] == []


def test_replaces_an_existing_table_and_leaves_no_partial(write, do_import, store, key):
    do_import(write("a.csv", "x\n1\n"))
    do_import(write("b.csv", "y\n2\n"))
    assert rows_of(store, key) == (["y"], [("2",)])
    assert sorted(p.name for p in store.iterdir()) == ["table.parquet"]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("A.TXT", "csv"),
        ("a.tsv", "csv"),
        ("a.xlsx", "xlsx"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
    ],
)
def test_detect_format(name, fmt):
    assert detect_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.xls", "a.json", "a.parquet", "README"])
def test_unknown_format_is_a_usage_error(write, store, key, name):
    source = write(name, "id\n1\n")
    with pytest.raises(UsageError):
        detect_format(source)
    with pytest.raises(UsageError):
        import_table(source, store / "t.parquet", key)
    assert list(store.iterdir()) == []


def test_unknown_explicit_format_and_encoding(write, store, key):
    source = write("a.csv", "id\n1\n")
    with pytest.raises(UsageError):
        import_table(source, store / "t.parquet", key, fmt="xls")
    with pytest.raises(UsageError):
        import_table(source, store / "t.parquet", key, encoding="utf-16")
    assert list(store.iterdir()) == []


def test_missing_source_and_bad_key(tmp_path, store, key, write):
    with pytest.raises(NotFound):
        import_table(tmp_path / "nope.csv", store / "t.parquet", key)
    with pytest.raises(UsageError):
        import_table(write("a.csv", "id\n1\n"), store / "t.parquet", b"short")
    assert list(store.iterdir()) == []
