"""Files that must be refused: every problem reported, nothing written."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest

from civicshare.holdings.problems import MAX_PROBLEMS


def located(error):
    return [(p.line, p.field) for p in error.problems]


@pytest.mark.parametrize("content", [b"", b"   \n\r\n\t \n"])
@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl"])
def test_empty_file(write, refused, content, name):
    error = refused(write(name, content))
    assert [p.message for p in error.problems] == ["the file is empty"]
    assert error.problems[0].file == name


def test_empty_workbook_file(write, refused):
    error = refused(write("empty.xlsx", b""))
    assert error.problems[0].message == "the file is empty"


@pytest.mark.parametrize("content", ["id,name\n", "id,name", "id,name\r\n\r\n\r\n", "id\n\n\n"])
def test_header_but_no_rows(write, refused, content):
    error = refused(write("headers.csv", content))
    assert "header but no data rows" in error.problems[0].message


def test_ragged_rows_every_one_reported_with_line_and_column(write, refused):
    text = (
        "id,name,town,postcode\n"  # 1
        "1,Ann,Ely,CB7 4AA\n"  # 2
        '2,"Flat 1\nMill Road",Ely,CB7 4AB\n'  # 3-4: one record over two lines
        "3,Bob,Ely\n"  # 5: too few
        "4,Cy,Ely,CB7 4AC\n"  # 6
        "5,Di,Ely,CB7 4AD,extra\n"  # 7: too many
        "6\n"  # 8: too few
    )
    error = refused(write("ragged.csv", text), label="residents upload")
    assert [p.message for p in error.problems] == [
        "line 5 has 3 fields but the header has 4 (nothing for 'postcode' onwards)",
        "line 7 has 5 fields but the header has 4",
        "line 8 has 1 field but the header has 4 (nothing for 'name' onwards)",
    ]
    assert located(error) == [(5, "postcode"), (7, None), (8, "name")]
    assert {p.file for p in error.problems} == {"residents upload"}
    assert "3 problems" in error.message


def test_more_than_a_hundred_problems_are_capped_and_counted(write, refused):
    text = "a,b\n" + "1\n" * 150 + "1,2\n"
    error = refused(write("many.csv", text))
    assert len(error.problems) == MAX_PROBLEMS + 1
    assert error.problems[0].line == 2
    assert error.problems[MAX_PROBLEMS - 1].line == MAX_PROBLEMS + 1
    assert error.problems[-1].message == "50 more problems like these are not listed"
    assert "150 problems found; the first 100 are listed" in error.message


def test_unterminated_quote(write, refused):
    error = refused(write("quote.csv", 'id,name,town\n1,Ann,Ely\n2,"Bob,Ely\n3,Cy,Ely\n'))
    assert located(error) == [(3, "name")]
    assert "never closed" in error.problems[0].message


def test_text_after_closing_quote(write, refused):
    error = refused(write("quote.csv", 'id,name\n1,"Ann"x\n2,Bob\n'))
    assert located(error) == [(2, "name")]


def test_row_too_long(write, refused):
    error = refused(write("long.csv", "a,b\n1,2\n3," + "x" * 2_100_000 + "\n4,5\n"))
    assert [(p.line, p.message) for p in error.problems] == [(3, "line 3 is longer than the 2 MB allowed for one row")]


def test_damaged_utf8_names_every_bad_line(write, refused):
    content = "id,name\n1,Zoë\n".encode() + b"2,Bj\xf6rn\n3,ok\n4,\xff\xfe\n"
    error = refused(write("damaged.csv", content))
    assert located(error) == [(3, None), (5, None)]
    assert "not valid UTF-8" in error.problems[0].message
    assert "damaged" in error.problems[0].message


def test_explicit_utf8_refuses_windows_1252(write, refused):
    error = refused(write("legacy.csv", "id,amount\n1,€5\n2,£3\n".encode("cp1252")), encoding="utf-8")
    assert located(error) == [(2, None), (3, None)]


def test_neither_utf8_nor_windows_1252(write, refused):
    # 0x81 and 0x9d are undefined in Windows-1252 and cannot start valid UTF-8 either.
    error = refused(write("odd.csv", b"id,v\n1,a\x81\n2,b\n3,\x9d\n"))
    assert located(error) == [(2, None), (4, None)]
    assert "UTF-8 or Windows-1252" in error.problems[0].message


def test_explicit_windows_1252_with_undefined_bytes(write, refused):
    error = refused(write("odd.csv", b"id,v\n1,\x81\n"), encoding="windows-1252")
    assert located(error) == [(2, None)]


@pytest.mark.parametrize(
    ("text", "duplicate"),
    [("id,name,id\n1,2,3\n", "id"), ("id,Name, NAME \n1,2,3\n", "NAME"), ("id;Email;email\n1;2;3\n", "email")],
)
def test_duplicate_headers(write, refused, text, duplicate):
    error = refused(write("dup.csv", text))
    assert located(error) == [(1, duplicate)]
    assert "more than once" in error.problems[0].message


def test_empty_header_names(write, refused):
    error = refused(write("blank.csv", "id,,name,\n1,2,3,4\n"))
    assert located(error) == [(1, None), (1, None)]
    assert error.problems[0].message == "the header (line 1) has no name for column 2"
    assert error.problems[1].message == "the header (line 1) has no name for column 4"


def test_blank_first_line(write, refused):
    error = refused(write("blank.csv", "\nid,name\n1,Ann\n"))
    assert located(error) == [(1, None)]


def test_unterminated_quote_in_header(write, refused):
    error = refused(write("hdr.csv", 'id,"name\n1,Ann\n'))
    assert located(error) == [(1, None)]


def test_jsonl_bad_lines_all_reported(write, refused):
    text = '{"id": "1"}\n\n{"id": 2,}\n[1, 2]\n"text"\n{"id": 3, "id": 4}\n{"id": NaN}\n'
    error = refused(write("bad.jsonl", text))
    assert located(error) == [(3, None), (4, None), (5, None), (6, "id"), (7, None)]
    messages = [p.message for p in error.problems]
    assert messages[0].startswith("line 3 is not valid JSON")
    assert messages[1] == "line 4 is a list, not a JSON object ({...})"
    assert messages[2] == "line 5 is a string, not a JSON object ({...})"
    assert messages[3] == "line 6 has the key 'id' more than once"


def test_jsonl_keys_clashing_by_case(write, refused):
    error = refused(write("case.jsonl", '{"email": "a"}\n{"Email": "b"}\n'))
    assert located(error) == [(2, "Email")]


def test_not_a_workbook(write, refused):
    error = refused(write("fake.xlsx", b"PK\x03\x04 this is not really a zip file"))
    assert error.problems[0].message == "the file is not a valid Excel workbook (.xlsx)"


def test_zip_that_is_not_a_workbook(write, refused):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    error = refused(write("zip.xlsx", buffer.getvalue()))
    assert error.problems[0].message == "the file is not a valid Excel workbook (.xlsx)"


def _workbook(rows, path):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_workbook_with_header_only(write, refused, tmp_path):
    error = refused(_workbook([["id", "name"]], tmp_path / "inbox" / "h.xlsx"))
    assert "header row but no data rows" in error.problems[0].message


def test_workbook_problems_use_row_numbers(write, refused, tmp_path):
    path = _workbook(
        [["id", "name", "ID"], [1, "Ann", 2]],
        tmp_path / "inbox" / "dup.xlsx",
    )
    assert located(refused(path)) == [(1, "ID")]
    path = _workbook(
        [["id", "name"], [1, "Ann"], [2, "Bob", "stray"], [3, "Cy"], [4, None, None, "far"]],
        tmp_path / "inbox" / "wide.xlsx",
    )
    error = refused(path)
    assert located(error) == [(3, None), (5, None)]
    assert error.problems[0].message == "row 3 has a value in column C, but the header names only 2 columns"
