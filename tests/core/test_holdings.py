"""Holdings through the core: encryption at rest, isolation, shred, KEK rotation, atomic import."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from civicshare.access import Role
from civicshare.crypto import open_sealed_to_file
from civicshare.db import tables as t
from civicshare.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied, Shredded
from civicshare.holdings.tabular import read_rows
from civicshare.node import Node
from tests.conftest import actor, write_csv

NORTH = actor("north-wold")
SOUTH = actor("south-fen")
CSV = "resident_id,name,phone\nR1,Ada Lovelace,01632 960001\nR2,Alan Turing,=HYPERLINK(\"x\")\n"


@pytest.fixture
def residents(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "residents.csv", CSV)


def _blobs(node: Node) -> list[Path]:
    return [p for p in node.layout.blobs_dir.rglob("*") if p.is_file()]


def test_import_list_show_export_round_trip(node: Node, residents: Path, tmp_path: Path) -> None:
    held = node.import_dataset(NORTH, residents, "residents")
    assert (held.kind, held.rows, held.columns) == ("dataset", 2, ["resident_id", "name", "phone"])
    assert [h.id for h in node.list_holdings(NORTH)] == [held.id]
    assert node.holding(NORTH, held.id).to_json()["state"] == "held"
    out = tmp_path / "out.jsonl"
    node.export(NORTH, held.id, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"resident_id": "R1", "name": "Ada Lovelace", "phone": "01632 960001"}
    csv_out = tmp_path / "out.csv"
    node.export(NORTH, held.id, csv_out)
    assert "'=HYPERLINK" in csv_out.read_text(), "formula injection is neutralised in CSV exports"


def test_document_round_trip(node: Node, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    held = node.import_document(NORTH, io.BytesIO(payload), "case-notes.pdf", title="Case notes")
    assert (held.kind, held.size, held.media_type, held.name) == ("document", len(payload), "application/pdf",
                                                                  "Case notes")
    out = tmp_path / "back.pdf"
    node.export(NORTH, held.id, out)
    assert out.read_bytes() == payload


def test_each_holding_has_its_own_wrapped_data_key(node: Node, residents: Path) -> None:
    a = node.import_dataset(NORTH, residents, "a")
    b = node.import_dataset(NORTH, residents, "b")
    assert a.key_id != b.key_id
    register = {k.id: k for k in node.key_register(actor("north-wold", Role.ADMIN))}
    kek = next(k for k in register.values() if k.purpose == "kek")
    for held in (a, b):
        key = register[held.key_id]
        assert (key.purpose, key.custody, key.holding_id) == ("data", "wrapped", held.id)
        assert kek.id in key.location


def test_organisations_are_isolated(node: Node, residents: Path, tmp_path: Path) -> None:
    held = node.import_dataset(NORTH, residents, "residents")
    doc = node.import_document(NORTH, io.BytesIO(b"private"), "note.txt")
    assert node.list_holdings(SOUTH) == []
    for hid in (held.id, doc.id):
        with pytest.raises(NotFound):
            node.holding(SOUTH, hid)
        with pytest.raises(NotFound):
            node.export(SOUTH, hid, tmp_path / f"{hid}.out")
        with pytest.raises(NotFound):
            node.shred(actor("south-fen", Role.ADMIN), hid)
    assert not list(tmp_path.glob("*.out"))
    # Still intact for its owner.
    node.export(NORTH, held.id, tmp_path / "ok.csv")
    # Another organisation's KEK cannot unwrap this organisation's data key.
    with node.db.engine.connect() as conn:
        row = conn.execute(select(t.keys).where(t.keys.c.id == held.key_id)).one()
    south_kek = node.keys.list("south-fen")
    south_kek_id = next(k.id for k in south_kek if k.purpose == "kek")
    from civicshare.keys import dek_aad

    aad = dek_aad("north-wold", held.id, held.key_id)
    # The right associated data, so only the KEK differs; North Wold's own KEK does unwrap it.
    assert node.keystore("north-wold").unwrap(row.wrapped_by, row.material, aad)
    with pytest.raises(IntegrityError):
        node.keystore("south-fen").unwrap(south_kek_id, row.material, aad)


def test_shred_destroys_the_data_key(node: Node, residents: Path, tmp_path: Path) -> None:
    held = node.import_dataset(NORTH, residents, "residents")
    doc = node.import_document(NORTH, io.BytesIO(b"report body"), "report.txt")
    # Keep "backups" of the encrypted bytes and of the wrapped key to show they are useless afterwards.
    backup = tmp_path / "backup.parquet"
    backup.write_bytes((node.layout.home / held.blob).read_bytes())
    doc_backup = tmp_path / "backup.age"
    doc_backup.write_bytes((node.layout.home / doc.blob).read_bytes())
    with pytest.raises(PermissionDenied, match="caseworker"):
        node.shred(actor("north-wold", Role.CASEWORKER), held.id)

    for h in (held, doc):
        shredded = node.shred(NORTH, h.id)
        assert shredded.shredded and shredded.shredded_by == NORTH.name
        assert not (node.layout.home / h.blob).exists()
        with pytest.raises(Shredded, match="was shredded on") as info:
            node.export(NORTH, h.id, tmp_path / "after.csv")
        assert info.value.http_status == 410
        with pytest.raises(Shredded):
            node.shred(NORTH, h.id)
    assert not (tmp_path / "after.csv").exists()
    with node.db.engine.connect() as conn:
        rows = conn.execute(select(t.keys).where(t.keys.c.id.in_([held.key_id, doc.key_id]))).all()
    assert all(r.material is None and r.state == "destroyed" and r.destroyed_at for r in rows)
    # No key the node still holds opens the backups.
    assert node.keys.unwrap_data_key("north-wold", held.key_id, node.keystore("north-wold")) is None
    with pytest.raises(IntegrityError):
        read_rows(backup, b"\x00" * 32)
    from civicshare.crypto import new_document_key

    with pytest.raises(IntegrityError):
        open_sealed_to_file(doc_backup, new_document_key(), tmp_path / "doc.out")
    assert not (tmp_path / "doc.out").exists()
    assert node.holding(NORTH, held.id).to_json()["state"] == "shredded"


def test_shred_leaves_no_wrapped_key_in_sqlite_file(node: Node, residents: Path) -> None:
    if node.db.backend != "sqlite":
        pytest.skip("SQLite-specific: secure_delete and WAL truncation")
    held = node.import_dataset(NORTH, residents, "residents")
    with node.db.engine.connect() as conn:
        wrapped = conn.execute(select(t.keys.c.material).where(t.keys.c.id == held.key_id)).scalar_one()
    node.shred(NORTH, held.id)
    for path in node.layout.home.glob("civicshare.db*"):
        assert wrapped not in path.read_bytes(), f"wrapped key bytes survive in {path.name}"


def test_kek_rotation_rewraps_everything(node: Node, residents: Path, tmp_path: Path) -> None:
    admin = actor("north-wold", Role.ADMIN)
    held = node.import_dataset(NORTH, residents, "residents")
    doc = node.import_document(NORTH, io.BytesIO(b"document body"), "d.txt")
    gone = node.import_dataset(NORTH, residents, "gone")
    node.shred(NORTH, gone.id)
    old_kek = next(k.id for k in node.key_register(admin) if k.purpose == "kek" and k.state == "active")
    new_kek, count = node.rotate_kek(admin)
    assert count == 2, "live data keys are re-wrapped; shredded ones stay destroyed"
    register = {k.id: k for k in node.key_register(admin)}
    assert register[old_kek].state == "destroyed" and register[old_kek].rotated_at is not None
    assert register[new_kek].state == "active"
    assert not node.keystore("north-wold").has(old_kek), "the old KEK is gone from the keystore"
    assert new_kek in register[held.key_id].location and register[held.key_id].rotated_at is not None
    # Nothing became unreadable, also after reopening from disk.
    node.close()
    from tests.conftest import PASSPHRASE

    with Node.open(node.layout.home, passphrase=PASSPHRASE) as again:
        again.export(NORTH, held.id, tmp_path / "r.csv")
        again.export(NORTH, doc.id, tmp_path / "d.txt")
        again.rotate_kek(admin)
        again.export(NORTH, held.id, tmp_path / "r2.csv")
    assert (tmp_path / "d.txt").read_bytes() == b"document body"
    assert (tmp_path / "r.csv").read_text() == (tmp_path / "r2.csv").read_text()
    # South Fen's KEK is untouched by North Wold's rotation.
    assert all(k.state == "active" for k in node.keys.list("south-fen"))


def test_bad_import_leaves_nothing(node: Node, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", "a,b\n1,2\n3,4,5\n6\n")
    with pytest.raises(InvalidInput) as info:
        node.import_dataset(NORTH, bad, "bad")
    lines = {p.line for p in info.value.problems}
    assert {3, 4} <= lines
    assert node.list_holdings(NORTH) == []
    assert _blobs(node) == []
    with node.db.engine.connect() as conn:
        assert conn.execute(select(t.keys).where(t.keys.c.purpose == "data")).all() == []


def test_queries_are_scoped_in_sql(node: Node, residents: Path) -> None:
    """Even with a guessed id, the organisation filter is part of the query itself."""
    held = node.import_dataset(NORTH, residents, "residents")
    with node.db.engine.connect() as conn:
        visible = conn.execute(text("SELECT count(*) FROM holdings WHERE id = :i AND org_id = :o"),
                               {"i": held.id, "o": "south-fen"}).scalar_one()
    assert visible == 0


def test_export_into_memory_file_writes_in_place(node: Node, residents: Path) -> None:
    import os

    from civicshare.memfile import memory_file

    held = node.import_dataset(NORTH, residents, "residents")
    doc = node.import_document(NORTH, io.BytesIO(b"in memory only"), "m.txt")
    with memory_file() as (fd, path):
        node.export(NORTH, held.id, path, "csv", overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        assert os.read(fd, 1 << 16).decode().startswith("resident_id,name,phone\nR1,Ada Lovelace")
    with memory_file() as (fd, path):
        node.export(NORTH, doc.id, path, overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        assert os.read(fd, 100) == b"in memory only"


def test_document_media_type_must_be_one(node: Node) -> None:
    from civicshare.errors import UsageError

    with pytest.raises(UsageError, match="not a media type"):
        node.import_document(NORTH, io.BytesIO(b"x"), "x.txt", media_type="text/plain\r\nX-Injected: 1")
    assert node.list_holdings(NORTH) == [] and _blobs(node) == []


def test_holdings_carry_a_classification(node: Node, residents: Path) -> None:
    from civicshare.errors import UsageError

    plain = node.import_dataset(NORTH, residents, "residents")
    sensitive = node.import_document(NORTH, io.BytesIO(b"x"), "plan.pdf", classification="OFFICIAL-SENSITIVE")
    assert plain.classification == "OFFICIAL" and sensitive.classification == "OFFICIAL-SENSITIVE"
    shown = {h.id: h.to_json()["classification"] for h in node.list_holdings(NORTH)}
    assert shown == {plain.id: "OFFICIAL", sensitive.id: "OFFICIAL-SENSITIVE"}
    assert node.holding(NORTH, sensitive.id).classification == "OFFICIAL-SENSITIVE"
    imports = [e for e in node.audit.entries("north-wold") if e.action == "holding.import"]
    assert [e.details["classification"] for e in imports] == ["OFFICIAL", "OFFICIAL-SENSITIVE"]
    with pytest.raises(UsageError, match="Unknown classification 'SECRET'"):
        node.import_dataset(NORTH, residents, "secret", classification="SECRET")
    with pytest.raises(UsageError, match="Unknown classification"):
        node.import_document(NORTH, io.BytesIO(b"x"), "x.pdf", classification="official")
    assert len(node.list_holdings(NORTH)) == 2
    refused = [e for e in node.audit.entries("north-wold") if e.action == "holding.import"][-2:]
    assert [e.outcome for e in refused] == ["refused", "refused"]
