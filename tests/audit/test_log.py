"""The audit log through the core, on SQLite and PostgreSQL: events, proofs, tampering, concurrency."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from civicshare.access import Role
from civicshare.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from civicshare.audit.note import Checkpoint, open_note
from civicshare.db import tables as t
from civicshare.errors import AuditTampered, InvalidInput, PermissionDenied
from civicshare.node import Node
from tests.conftest import PASSPHRASE, actor, write_csv

NORTH = actor("north-wold")
ADMIN = actor("north-wold", Role.ADMIN)


def _actions(node: Node, obj: str | None = None) -> list[tuple[str, str | None, str]]:
    return [(e.action, e.object, e.outcome) for e in node.audit_entries(ADMIN, obj=obj)]


def test_every_capability_is_logged(node: Node, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "r.csv", "id,name\n1,Ada\n")
    held = node.import_dataset(NORTH, src, "residents")
    node.holding(NORTH, held.id)
    node.export(NORTH, held.id, tmp_path / "out.csv")
    with pytest.raises(PermissionDenied):
        node.shred(actor("north-wold", Role.CASEWORKER), held.id)
    node.shred(NORTH, held.id)
    doc = node.import_document(NORTH, io.BytesIO(b"x"), "d.txt")
    node.rotate_kek(ADMIN)
    node.export_age_identity(ADMIN, tmp_path / "id.txt")
    user, token = node.add_user("north-wold", "sam", Role.CASEWORKER)
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the log entry is what is checked
        node.authenticate(token[:-2] + "xx")

    logged = _actions(node)
    assert logged[0] == ("organisation.create", "north-wold", "ok")
    assert [a for a, _o, _r in logged[1:4]] == ["key.create"] * 3
    assert _actions(node, held.id) == [
        ("holding.import", held.id, "ok"), ("holding.view", held.id, "ok"), ("holding.export", held.id, "ok"),
        ("holding.shred", held.id, "refused"), ("holding.shred", held.id, "ok"),
    ]
    data_key = next(e for e in node.audit_entries(ADMIN) if e.action == "holding.import").details["key"]
    assert [a for a, _o, _r in _actions(node, data_key)] == ["key.create", "key.unwrap", "key.destroy"]
    actions = {a for a, _o, _r in logged}
    assert {"key.rotate", "key.export", "key.destroy", "user.create", "token.create", "login.failed"} <= actions
    assert ("holding.import", doc.id, "ok") in logged
    refused = next(e for e in node.audit_entries(ADMIN, obj=held.id) if e.outcome == "refused")
    assert refused.actor == "tester-caseworker" and refused.details["code"] == "forbidden"
    failed_login = next(e for e in node.audit_entries(ADMIN) if e.action == "login.failed")
    assert failed_login.actor == "sam" and failed_login.object == token.split(".")[1]
    # South Fen's log holds only its own setup; nothing of North Wold's.
    assert {e.org_id for e in node.audit_entries(actor("south-fen", Role.ADMIN))} == {"south-fen"}


def test_entries_never_hold_the_personal_data(node: Node, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "r.csv", "id,name\n1,Zebedee Quixote-Canary\n")
    node.import_dataset(NORTH, src, "residents")
    bad = write_csv(tmp_path / "bad.csv", "id,name\n1,Zebedee Quixote-Canary,extra\n")
    with pytest.raises(Exception):  # noqa: B017
        node.import_dataset(NORTH, bad, "bad")
    with node.db.engine.connect() as conn:
        stored = b"".join(bytes(r) for r in conn.execute(select(t.audit_entries.c.entry)).scalars())
    assert b"Zebedee" not in stored and b"Quixote" not in stored


def test_filters_and_roles(node: Node, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "r.csv", "id\n1\n")
    held = node.import_dataset(actor("north-wold", name="amira"), src, "r")
    assert [e.action for e in node.audit_entries(ADMIN, by="amira-records_manager")] == ["key.create", "holding.import"]
    later = node.audit_entries(ADMIN)[-1].time
    assert node.audit_entries(ADMIN, since=later)[-1].object == held.id
    assert node.audit_entries(ADMIN, limit=2)[1].index == 1
    with pytest.raises(PermissionDenied):
        node.audit_entries(actor("north-wold", Role.CASEWORKER))


def test_checkpoint_and_proofs_verify(node: Node) -> None:
    for i in range(37):
        node.audit.append("north-wold", "tester", "holding.view", f"h_{i}")
    signed = node.audit_checkpoint(ADMIN)
    _sig, public = node.keys.signing_key("north-wold")
    body = Checkpoint.parse(open_note(signed.note, "civicshare/audit/north-wold", public))
    size = len(node.audit_entries(ADMIN))
    assert body.size == size == signed.size
    assert node.audit_checkpoint(ADMIN).note == signed.note, "no new events: the same checkpoint"
    for index in (0, 5, size - 1):
        proof = node.audit_inclusion(ADMIN, index)
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        verify_inclusion(leaf_hash(proof["entry"].encode()), index, size, hashes, body.root_hash)
        assert proof["checkpoint"] == signed.note
    old = node.audit_inclusion(ADMIN, 3, size=10)
    node.audit.append("north-wold", "tester", "holding.view", "h_more")
    consistency = node.audit_consistency(ADMIN, size)
    verify_consistency(size, size + 1, [base64.b64decode(h) for h in consistency["hashes"]], body.root_hash,
                       base64.b64decode(consistency["to_root"]))
    assert old["tree_size"] == 10


def _tamper(node: Node, sql_change) -> None:  # type: ignore[no-untyped-def]
    with node.db.engine.begin() as conn:
        sql_change(conn)


def _grow(node: Node, n: int = 20) -> None:
    for i in range(n):
        node.audit.append("north-wold", "tester", "holding.view", f"h_{i}", details={"n": i})


E = t.audit_entries
N = t.audit_nodes


def _entry(conn, idx: int) -> bytes:  # type: ignore[no-untyped-def]
    return bytes(conn.execute(select(E.c.entry).where(E.c.org_id == "north-wold", E.c.idx == idx)).scalar_one())


def _set_entry(conn, idx: int, data: bytes) -> None:  # type: ignore[no-untyped-def]
    conn.execute(update(E).where(E.c.org_id == "north-wold", E.c.idx == idx).values(entry=data))


def _set_leaf(conn, idx: int, data: bytes) -> None:  # type: ignore[no-untyped-def]
    conn.execute(update(N).where(N.c.org_id == "north-wold", N.c.level == 0, N.c.idx == idx)
                 .values(hash=leaf_hash(data)))


def _edit(conn) -> None:  # type: ignore[no-untyped-def]
    _set_entry(conn, 12, _entry(conn, 12).replace(b'"tester"', b'"someone"'))


def _edit_and_rehash(conn) -> None:  # type: ignore[no-untyped-def]
    data = _entry(conn, 12).replace(b'"tester"', b'"someone"')
    _set_entry(conn, 12, data)
    _set_leaf(conn, 12, data)
    conn.execute(update(E).where(E.c.org_id == "north-wold", E.c.idx == 12).values(actor="someone"))


def _delete(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute(delete(E).where(E.c.org_id == "north-wold", E.c.idx == 12))


def _delete_and_renumber(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute(delete(E).where(E.c.org_id == "north-wold", E.c.idx == 12))
    last = conn.execute(select(E.c.idx).where(E.c.org_id == "north-wold").order_by(E.c.idx.desc())).first()[0]
    for idx in range(13, last + 1):
        conn.execute(update(E).where(E.c.org_id == "north-wold", E.c.idx == idx).values(idx=idx - 1))


def _insert(conn) -> None:  # type: ignore[no-untyped-def]
    last = conn.execute(select(E.c.idx).where(E.c.org_id == "north-wold").order_by(E.c.idx.desc())).first()[0]
    for idx in range(last, 11, -1):
        conn.execute(update(E).where(E.c.org_id == "north-wold", E.c.idx == idx).values(idx=idx + 1))
    row = conn.execute(select(E).where(E.c.org_id == "north-wold", E.c.idx == 11)).one()
    conn.execute(t.audit_entries.insert().values({**row._mapping, "idx": 12}))


def _reorder(conn) -> None:  # type: ignore[no-untyped-def]
    a, b = _entry(conn, 12), _entry(conn, 13)
    _set_entry(conn, 12, b)
    _set_entry(conn, 13, a)


def _truncate(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute(delete(E).where(E.c.org_id == "north-wold", E.c.idx >= 12))


@pytest.mark.parametrize(("tamper", "index"), [
    (_edit, 12), (_edit_and_rehash, 12), (_delete, 12), (_delete_and_renumber, 12), (_insert, 12),
    (_reorder, 12), (_truncate, 12),
])
def test_tampering_names_the_first_bad_index(node: Node, tamper, index: int) -> None:  # type: ignore[no-untyped-def]
    _grow(node)
    assert node.audit_verify(ADMIN).size > 20
    _tamper(node, tamper)
    with pytest.raises(AuditTampered) as info:
        node.audit_verify(ADMIN)
    assert info.value.index == index, info.value.message
    assert f"index {index}" in info.value.message


def test_truncation_hidden_from_the_head_is_caught_by_a_checkpoint(node: Node) -> None:
    _grow(node)
    size = node.audit_checkpoint(ADMIN).size

    def cut(conn) -> None:  # type: ignore[no-untyped-def]
        _truncate(conn)
        conn.execute(update(t.audit_heads).where(t.audit_heads.c.org_id == "north-wold").values(size=12))

    _tamper(node, cut)
    with pytest.raises(AuditTampered, match="truncated") as info:
        node.audit_verify(ADMIN)
    assert info.value.index == 12 and size > 12


def test_full_rewrite_is_caught_by_a_checkpoint_saved_earlier(node: Node) -> None:
    _grow(node)
    saved = node.audit_checkpoint(ADMIN).note  # a partner keeps this
    original = len(node.audit_entries(ADMIN))

    def wipe(conn) -> None:  # type: ignore[no-untyped-def]
        for table in (t.audit_checkpoints, t.audit_nodes, t.audit_entries):
            conn.execute(delete(table).where(table.c.org_id == "north-wold"))
        conn.execute(update(t.audit_heads).where(t.audit_heads.c.org_id == "north-wold").values(size=0, frontier=b""))

    _tamper(node, wipe)
    # The operator writes a different history of the same length, every hash recomputed by the core.
    for i in range(original):
        node.audit.append("north-wold", "tester", "holding.view", f"other_{i}")
    node.audit_verify(ADMIN)  # consistent with itself: only an outside checkpoint can tell
    with pytest.raises(AuditTampered, match="saved checkpoint") as info:
        node.audit_verify(ADMIN, [saved])
    assert info.value.index == 0


def test_forged_or_foreign_checkpoint_is_refused(node: Node) -> None:
    _grow(node, 3)
    note = node.audit_checkpoint(ADMIN).note
    forged = note.replace(note.splitlines()[1], str(int(note.splitlines()[1]) + 1), 1)
    with pytest.raises(InvalidInput, match="not a signed checkpoint of north-wold"):
        node.audit_verify(ADMIN, [forged])
    south = node.audit_checkpoint(actor("south-fen", Role.ADMIN)).note
    with pytest.raises(InvalidInput):
        node.audit_verify(ADMIN, [south])


def test_concurrent_writers_never_skip_or_repeat(node: Node, home: Path) -> None:
    url = node.config.db_url
    others = [Node.open(home, passphrase=PASSPHRASE) for _ in range(3)]
    assert all(o.config.db_url == url for o in others)
    before = len(node.audit_entries(ADMIN))

    def write(n: Node, k: int) -> None:
        for i in range(40):
            n.audit.append("north-wold", f"writer-{k}", "holding.view", f"h_{k}_{i}")

    threads = [threading.Thread(target=write, args=(o, k)) for k, o in enumerate(others)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for o in others:
        o.close()
    entries = node.audit_entries(ADMIN)
    assert [e.index for e in entries] == list(range(before + 120))
    assert node.audit_verify(ADMIN).size == before + 120


def test_concurrent_checkpoint_signers_agree(node: Node, home: Path) -> None:
    _grow(node, 5)
    signers = [Node.open(home, passphrase=PASSPHRASE) for _ in range(4)]
    notes: list[str] = []
    errors: list[BaseException] = []

    def sign(n: Node) -> None:
        try:
            notes.append(n.audit_checkpoint(ADMIN).note)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(s,)) for s in signers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for s in signers:
        s.close()
    assert errors == [] and len(set(notes)) == 1
    assert len(node.audit_checkpoints(ADMIN)) == 1


def test_verifying_while_another_process_appends_and_signs_checkpoints(node: Node, home: Path) -> None:
    # As `audit verify` does while `serve` runs: entries and checkpoints arrive between its reads.
    _grow(node, 200)
    writer = Node.open(home, passphrase=PASSPHRASE)
    stop = threading.Event()
    appended: list[int] = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            writer.audit.append("north-wold", "writer", "holding.view", f"w_{i}")
            if i % 5 == 0:
                writer.audit_checkpoint(ADMIN)
            i += 1
        appended.append(i)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        sizes = [node.audit_verify(ADMIN).size for _ in range(25)]
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert appended[0] > 25 and sizes == sorted(sizes) and sizes[-1] > sizes[0]
    assert node.audit_verify(ADMIN).size == len(node.audit_entries(ADMIN))


def test_an_entry_stored_beyond_the_head_is_caught(node: Node) -> None:
    _grow(node)
    size = node.audit_verify(ADMIN).size

    def add(conn) -> None:  # type: ignore[no-untyped-def]
        row = conn.execute(select(E).where(E.c.org_id == "north-wold", E.c.idx == size - 1)).one()
        conn.execute(t.audit_entries.insert().values({**row._mapping, "idx": size}))

    _tamper(node, add)
    with pytest.raises(AuditTampered, match="entries were added outside the log") as info:
        node.audit_verify(ADMIN)
    assert info.value.index == size
