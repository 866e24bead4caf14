"""A first look at a source file: its columns and first rows, as the import would read them, kept in
memory only (for ``civicshare mapping suggest``)."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

from civicshare.errors import NotFound
from civicshare.holdings.encoding import normalise_encoding
from civicshare.holdings.problems import refuse
from civicshare.holdings.sources import EMPTY_FILE, prepare
from civicshare.holdings.tabular import import_format


def _text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        yield from (line + "\n" for line in complete)
    pending += decoder.decode(b"", True)
    if pending:
        yield pending


def sample_rows(source: Path, *, fmt: str | None = None, encoding: str = "auto", label: str | None = None,
                limit: int = 1000) -> tuple[list[str], list[list[str | None]]]:
    """The columns and the first ``limit`` rows of a CSV, XLSX or JSON Lines file, as the import reads
    them (empty cells are None). Kept in memory only: for a person to review a mapping from."""
    source = Path(source)
    fmt = import_format(fmt, source)
    name = label or source.name
    if not source.is_file():
        raise NotFound(f"{name} does not exist or is not a file")
    if source.stat().st_size == 0:
        raise refuse(name, EMPTY_FILE)
    prepared = prepare(source, fmt, normalise_encoding(encoding), name)
    rows: list[list[str | None]] = []
    try:
        with ExitStack() as stack:
            if prepared.chunks is not None:
                chunks: Iterable[bytes] = prepared.chunks
            else:
                assert prepared.path is not None
                chunks = stack.enter_context(prepared.path.open("rb"))
            reader = csv.reader(_text_lines(chunks), delimiter=prepared.delimiter, quotechar='"', doublequote=True)
            next(reader, None)  # the header, already in prepared.columns
            width = len(prepared.columns)
            for record in reader:
                if len(rows) >= limit:
                    break
                rows.append([c or None for c in record[:width]] + [None] * (width - len(record)))
    except (csv.Error, UnicodeDecodeError):
        raise refuse(name, f"row {len(rows) + 1} could not be read as CSV") from None
    finally:
        prepared.close()
    return list(prepared.columns), rows
