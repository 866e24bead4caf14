"""Property: whatever Python's csv module writes, import + read_rows gives back ('' as None)."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicshare.holdings.tabular import export_table, import_table, read_rows

KEY = os.urandom(32)

# Any character but surrogates (not encodable) and NUL; plenty of the awkward ones.
awkward = st.sampled_from(list(",;\t|\"'\r\n =+-@") + ["\r\n", '""', "é", "€", "‘", "’", "😀", "\u2028", "\x85"])
cell = st.lists(
    st.one_of(awkward, st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    max_size=12,
).map("".join)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(min_value=1, max_value=4))
    columns = [f"col_{i}" for i in range(width)]
    rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1, max_size=8))
    return columns, rows


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), bom=st.booleans())
def test_csv_round_trip(table: tuple[list[str], list[list[str]]], bom: bool) -> None:
    columns, rows = table
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "random.csv"
        with source.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows)
        dest = Path(folder) / "table.parquet"
        info = import_table(source, dest, KEY)
        expected = [tuple(v if v != "" else None for v in row) for row in rows]
        assert info.rows == len(rows)
        assert read_rows(dest, KEY) == (columns, expected)


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables())
def test_jsonl_export_round_trip(table: tuple[list[str], list[list[str]]]) -> None:
    columns, rows = table
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "random.csv"
        with source.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([columns, *rows])
        dest = Path(folder) / "table.parquet"
        import_table(source, dest, KEY)
        out = Path(folder) / "out.jsonl"
        export_table(dest, KEY, out, "jsonl")
        again = Path(folder) / "again.parquet"
        import_table(out, again, KEY)
        assert read_rows(again, KEY) == read_rows(dest, KEY)
