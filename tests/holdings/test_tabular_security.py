"""Nothing personal in plaintext on disk or in error messages; keys never shown; the FIFO never hangs."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import tempfile
import threading
import time
import traceback
from pathlib import Path

import openpyxl
import pytest

from civicshare.errors import CivicshareError, InvalidInput
from civicshare.holdings import duck
from civicshare.holdings.fifo import FifoFeed
from civicshare.holdings.tabular import import_table, read_rows


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _feed_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("civicshare-feed-*")}


def _sources(inbox: Path, canary: str) -> list[tuple[Path, dict[str, str]]]:
    made = []
    text = f"id,secret_{canary}\n1,{canary}\n2,other\n"
    utf8 = inbox / "plain.csv"
    utf8.write_text(text, encoding="utf-8")
    made.append((utf8, {}))
    legacy = inbox / "legacy.csv"
    legacy.write_bytes(text.replace("other", "£other€").encode("cp1252"))
    made.append((legacy, {}))
    latin = inbox / "latin.csv"
    latin.write_bytes(text.encode("latin-1"))
    made.append((latin, {"encoding": "latin-1"}))
    lines = inbox / "lines.jsonl"
    lines.write_text(json.dumps({"id": "1", f"secret_{canary}": canary}) + "\n", encoding="utf-8")
    made.append((lines, {}))
    book = openpyxl.Workbook()
    book.active.append(["id", f"secret_{canary}"])
    book.active.append(["1", canary])
    workbook = inbox / "book.xlsx"
    book.save(workbook)
    made.append((workbook, {}))
    return made


def test_canary_never_reaches_disk_in_plaintext(tmp_path, key):
    canary = "CANARY" + secrets.token_hex(8)
    inbox, store, work = tmp_path / "inbox", tmp_path / "store", tmp_path / "work"
    for folder in (inbox, store, work):
        folder.mkdir()
    before = _feed_dirs()
    for source, options in _sources(inbox, canary):
        dest = store / (source.name + ".parquet")
        info = import_table(source, dest, key, work_dir=work, **options)
        assert info.rows >= 1
        assert canary.encode() not in dest.read_bytes()
        assert read_rows(dest, key)[1][0][1] == canary
        assert list(work.iterdir()) == []  # the FIFO's private folder is gone
        import_table(source, store / (source.name + ".default.parquet"), key, **options)
    for path in _files_under(tmp_path):
        if path.parent != inbox:
            data = path.read_bytes()
            assert canary.encode() not in data, path
            assert canary.encode("utf-16-le") not in data, path
    assert _feed_dirs() <= before


def test_refusals_never_quote_the_data(write, refused):
    canary = "CANARY" + secrets.token_hex(8)
    cases = [
        write("ragged.csv", f"a,b\n1,{canary},extra\n2\n"),
        write("quote.csv", f'a,b\n1,"{canary}\n'),
        write("after.csv", f'a,b\n1,"{canary}"x\n'),
        write("bad.jsonl", f'{{"a": "{canary}",}}\n["{canary}"]\n'),
        write("dup.jsonl", f'{{"a": "{canary}", "a": "{canary}"}}\n'),
        write("damaged.csv", f"a,b\n1,é{canary}".encode() + b"\xff\n"),
        write("odd.csv", f"a,b\n1,{canary}\x81".encode("latin-1")),
    ]
    for source in cases:
        error = refused(source)
        shown = json.dumps(error.to_json()) + error.one_line() + repr(error) + str(error.problems)
        assert canary not in shown, source.name


def test_key_never_appears_in_errors(tmp_path, key, write):
    secrets_shown = (base64.b64encode(key).decode(), key.hex())
    con = duck.connect()
    con.close()
    with pytest.raises(CivicshareError) as caught:
        duck.add_parquet_key(con, key)  # fails inside DuckDB: the connection is closed
    text = "".join(traceback.format_exception(caught.value))
    assert not any(s in text for s in secrets_shown)
    assert caught.value.__context__ is None and caught.value.__cause__ is None

    dest = tmp_path / "t.parquet"
    import_table(write("a.csv", "a\n1\n"), dest, key)
    with pytest.raises(CivicshareError) as caught:
        read_rows(dest, os.urandom(32))
    text = "".join(traceback.format_exception(caught.value))
    assert "AES" not in str(caught.value) and "LINE" not in str(caught.value)
    assert not any(s in text for s in secrets_shown)


def test_duckdb_never_spills_to_disk_and_never_downloads():
    with duck.connection() as con:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('temp_directory', 'autoinstall_known_extensions', 'autoload_known_extensions', 'threads')"
            ).fetchall()
        )
    assert settings == {
        "temp_directory": "",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "threads": "2",
    }


# --- the FIFO feed ---------------------------------------------------------------------------


def _read_all(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_fifo_delivers_everything_in_a_private_folder(tmp_path):
    chunks = [os.urandom(100_000) for _ in range(20)]
    feed = FifoFeed(chunks, work_dir=tmp_path)
    with feed as path:
        assert stat.S_ISFIFO(path.stat().st_mode)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert _read_all(path) == b"".join(chunks)
    assert feed.completed and feed.error is None
    assert list(tmp_path.iterdir()) == []


def test_fifo_reader_that_never_comes_does_not_hang(tmp_path):
    started = time.monotonic()
    feed = FifoFeed(iter([b"x" * 1_000_000]), work_dir=tmp_path)
    with feed:
        pass
    assert time.monotonic() - started < 5
    assert not feed.completed
    assert list(tmp_path.iterdir()) == []


def test_fifo_reader_that_stops_early_does_not_hang(tmp_path):
    feed = FifoFeed((b"y" * 65536 for _ in range(1000)), work_dir=tmp_path)
    with feed as path:
        with open(path, "rb") as f:
            assert f.read(10) == b"yyyyyyyyyy"
    assert not feed.completed
    assert list(tmp_path.iterdir()) == []


def test_fifo_reader_that_holds_the_pipe_open_without_reading_does_not_hang(tmp_path):
    feed = FifoFeed((b"z" * 65536 for _ in range(1000)), work_dir=tmp_path)
    with feed as path:
        f = open(path, "rb")  # noqa: SIM115 - held open on purpose
        f.read(1)
        timer = threading.Timer(10, f.close)
        timer.start()
    timer.cancel()
    f.close()
    assert not feed.completed
    assert list(tmp_path.iterdir()) == []


def test_fifo_reports_a_failing_source(tmp_path):
    def broken():
        yield b"a,b\r\n"
        raise InvalidInput("the source broke")

    feed = FifoFeed(broken(), work_dir=tmp_path)
    with feed as path:
        assert _read_all(path) == b"a,b\r\n"
    assert isinstance(feed.error, InvalidInput)
    assert not feed.completed
