"""Nothing personal in plaintext: plant canary values, then scan home, database and temp directory.

The scan runs repeatedly while each command is still working (to catch staging or spill files) and
again after it. Files written by ``export`` go to a folder outside the scanned ones: an export is
the user asking for plaintext, on purpose, somewhere of their choosing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import openpyxl
from sqlalchemy import create_engine, text

from tests.cli.conftest import Cli

CANARY = "CANARY-q7Zx"


def _canaries(n: int) -> list[str]:
    return [f"{CANARY}-{i:06d}" for i in range(n)]


def _walk(root: Path) -> list[Path]:
    """Every entry under ``root``; folders removed while we look (finished staging) are skipped."""
    found = []
    for folder, dirs, files in os.walk(root, onerror=lambda _exc: None):
        found += [Path(folder) / name for name in dirs + files]
    return found


def _scan_files(roots: list[Path], needles: list[bytes], seen: dict[Path, tuple[int, int, int]] | None = None,
                ) -> list[str]:
    """Files holding any needle. With ``seen``, a file whose inode, size and modification time are
    unchanged since it was last read is not read again: it cannot hold anything new."""
    hits = []
    for root in roots:
        for path in _walk(root):
            try:
                info = path.stat()
                if not path.is_file():  # FIFOs and sockets hold nothing on disk
                    continue
                stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
                if seen is not None and seen.get(path) == stamp:
                    continue
                data = path.read_bytes()
                if seen is not None:
                    seen[path] = stamp
            except (FileNotFoundError, PermissionError):
                continue  # a staging file renamed while we looked
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
            if CANARY.encode() in data:
                hits.append(f"{path}: canary prefix")
    return hits


def _scan_database(db_url: str | None, needles: list[str]) -> list[str]:
    if not db_url:
        return []  # SQLite lives under the home and is scanned as a file
    engine = create_engine(db_url)
    hits = []
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT table_name FROM information_schema.tables "
                                   "WHERE table_schema = current_schema()")).scalars().all()
        for table in tables:
            for (row,) in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')):
                hits += [f"{table}: {n}" for n in needles if n in row or CANARY in row]
    engine.dispose()
    return hits


def _run_scanning(cli: Cli, roots: list[Path], needles: list[bytes], *args: str) -> list[str]:
    proc = cli.popen(*args)
    hits: list[str] = []
    seen: dict[Path, tuple[int, int, int]] = {}
    while proc.poll() is None:
        hits += _scan_files(roots, needles, seen)
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    return hits + _scan_files(roots, needles)


def test_canaries_never_reach_disk_in_plaintext(initialised: Cli, tmp_path: Path, db_url: str | None) -> None:
    cli = initialised
    sources = tmp_path / "sources"
    exports = tmp_path / "exports"
    sources.mkdir()
    exports.mkdir()
    tmpdir = Path(cli.env["TMPDIR"])
    roots = [cli.home, tmpdir]
    values = _canaries(60_000)
    needles = [v.encode() for v in values[:: len(values) // 200]]
    # The scanner itself must see a leak, or this test could never fail.
    leak = tmpdir / "leak.txt"
    leak.write_text(values[0])
    assert _scan_files(roots, needles), "the scanner missed a planted plaintext file"
    leak.unlink()

    big = sources / "big.csv"
    with big.open("w", encoding="utf-8") as fh:
        fh.write("id,name,note\n")
        for i, v in enumerate(values):
            fh.write(f"{i},{v},\"plain, {v}\"\n")
    cp = sources / "legacy.csv"
    cp.write_bytes(("id,name\n" + "".join(f"{i},{v} \u20ac\n" for i, v in enumerate(values[:2000])))
                   .encode("cp1252"))
    xlsx = sources / "sheet.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name"])
    for i, v in enumerate(values[:2000]):
        sheet.append([i, v])
    book.save(xlsx)
    jsonl = sources / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "name": v}) + "\n" for i, v in enumerate(values[:2000])))
    doc = sources / "letter.txt"
    doc.write_text("Dear resident,\n" + "\n".join(values[:5000]))

    hits: list[str] = []
    ids = []
    for path, kind in ((big, "dataset"), (cp, "dataset"), (xlsx, "dataset"), (jsonl, "dataset"), (doc, None)):
        args = ["import", str(path), "--json"] + (["--dataset", path.stem] if kind else ["--document"])
        hits += _run_scanning(cli, roots, needles, *args)
        ids.append(cli("holdings", "list", "--json").json()[-1]["id"])
    assert cli("holdings", "list", "--json").json()[1]["source_encoding"] == "windows-1252"
    for hid in ids:
        hits += _run_scanning(cli, roots, needles, "export", hid, "--out", str(exports / f"{hid}.out"),
                              *(["--format", "csv"] if hid != ids[-1] else []))
    hits += _run_scanning(cli, roots, needles, "keys", "rotate", "--kek")
    hits += _run_scanning(cli, roots, needles, "shred", ids[0], "--yes")
    hits += _scan_database(db_url, [v for v in values[::500]])
    assert hits == [], "plaintext personal data found:\n" + "\n".join(sorted(set(hits))[:20])
    # The exports really hold the data, so the scan above would have seen it had it leaked.
    assert values[0] in (exports / f"{ids[0]}.out").read_text()
    assert values[0] in (exports / f"{ids[-1]}.out").read_text()
