"""``civicshare audit log|checkpoint|proof|verify``, end to end through the real command, on both backends.

Checkpoints and proofs are checked the way a partner would: with the pure RFC 9162 and C2SP functions
against the signed checkpoint, never by trusting the hashes a proof reports about itself. Tampering is
done behind civicshare's back, straight in the database: ``sqlite3`` on the home's file, or SQLAlchemy
on the PostgreSQL URL.
"""

from __future__ import annotations

import base64
import getpass
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from civicshare.access import Role
from civicshare.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from civicshare.audit.note import Checkpoint, open_note, parse_verifier_key
from civicshare.errors import IntegrityError
from civicshare.node import Node
from tests.cli.conftest import Cli, Result

ORG = "north-wold"
OPERATOR = f"cli:{getpass.getuser()}"  # the subprocess inherits our environment, so the same user


def run_all(cli: Cli, *commands: tuple[str, ...]) -> list[Result]:
    """Run independent read-mostly commands side by side (each is a whole Python start-up)."""
    procs = [cli.popen(*args) for args in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(Result(proc.returncode, out, err))
    return results


def one_line_refusal(result: Result, code: int) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.count("\n") == 1 and result.err.startswith("civicshare: "), result.err
    assert "Traceback" not in result.err
    return result.err


@contextmanager
def database(home: Path, db_url: str | None) -> Iterator[Any]:
    """The node's database as an intruder reaches it; yields ``run(sql, **params) -> rows`` (``:name`` style)."""
    if db_url is None:
        conn = sqlite3.connect(home / "civicshare.db")
        try:
            yield lambda sql, **params: conn.execute(sql, params).fetchall()
            conn.commit()
        finally:
            conn.close()
    else:
        engine = create_engine(db_url)
        try:
            with engine.begin() as sa_conn:
                def run(sql: str, **params: Any) -> list[Any]:
                    result = sa_conn.execute(text(sql), params)
                    return list(result) if result.returns_rows else []
                yield run
        finally:
            engine.dispose()


def tamper_entry(home: Path, db_url: str | None, org: str, index: int) -> None:
    """Change one character of the actor inside the stored bytes of one audit entry, nothing else."""
    with database(home, db_url) as run:
        [(data,)] = run("SELECT entry FROM audit_entries WHERE org_id = :org AND idx = :idx", org=org, idx=index)
        data = bytes(data)
        actor = json.loads(data)["actor"]
        changed = data.replace(json.dumps({"actor": actor}, separators=(",", ":"))[1:-1].encode(),
                               json.dumps({"actor": "X" + actor[1:]}, separators=(",", ":"))[1:-1].encode(), 1)
        assert changed != data and len(changed) == len(data)
        run("UPDATE audit_entries SET entry = :entry WHERE org_id = :org AND idx = :idx",
            entry=changed, org=org, idx=index)


def note_checkpoint(signed: dict[str, Any], org: str = ORG) -> Checkpoint:
    """Open a signed checkpoint with its own verifier key, as a partner who pinned that key would."""
    name, public_key = parse_verifier_key(signed["verifier_key"])
    assert name == f"civicshare/audit/{org}"
    checkpoint = Checkpoint.parse(open_note(signed["note"], name, public_key))
    assert checkpoint.origin == name
    assert (checkpoint.size, base64.b64encode(checkpoint.root_hash).decode()) == (
        signed["tree_size"], signed["root_hash"])
    return checkpoint


def b64decode_all(hashes: list[str]) -> list[bytes]:
    return [base64.b64decode(h, validate=True) for h in hashes]


def test_audit_log_lists_and_filters_who_touched_what(initialised: Cli, tmp_path: Path) -> None:
    cli = initialised
    src = tmp_path / "residents.csv"
    src.write_text("id,name,postcode\n1,Ada,AB1 2CD\n2,Grace,EF3 4GH\n", encoding="utf-8")
    imported = cli("import", str(src), "--dataset", "residents", "--json")
    assert imported.code == 0, imported.err
    hid = imported.json()["id"]
    shown, refused = run_all(cli, ("holdings", "show", hid),
                             ("export", "h_nosuchholding", "--out", str(tmp_path / "none.csv")))
    assert shown.code == 0, shown.err
    one_line_refusal(refused, 1)
    exported = cli("export", hid, "--out", str(tmp_path / "out.csv"))
    assert exported.code == 0, exported.err
    assert cli("shred", hid, "--yes").code == 0
    with Node.open(cli.home) as node:
        log = [e.to_json() for e in node.audit.entries(ORG)]
    view = next(e for e in log if e["action"] == "holding.view")

    (by_object, by_actor, future, past, since_view, table) = run_all(
        cli,
        ("audit", "log", "--json", "--object", hid),
        ("audit", "log", "--json", "--actor", OPERATOR),
        ("audit", "log", "--json", "--since", "2999-01-01T00:00"),
        ("audit", "log", "--json", "--since", "2000-01-01"),
        ("audit", "log", "--json", "--since", view["time"]),
        ("audit", "log", "--object", hid),
    )

    assert past.code == 0, past.err
    assert past.json() == log  # an ISO date in the past: everything, oldest first
    assert [e["index"] for e in log] == list(range(len(log)))

    assert by_object.code == 0, by_object.err
    events = by_object.json()
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("holding.import", "ok"), ("holding.view", "ok"), ("holding.export", "ok"), ("holding.shred", "ok")]
    assert all(e["actor"] == OPERATOR and e["object"] == hid and e["organisation"] == ORG for e in events)
    assert events == [e for e in log if e["object"] == hid]
    assert events[0]["details"]["rows"] == 2 and events[0]["details"]["kind"] == "dataset"
    assert events[2]["details"]["rows"] == 2

    [refusal] = [e for e in past.json() if e["object"] == "h_nosuchholding"]
    assert (refusal["action"], refusal["actor"], refusal["outcome"]) == ("holding.export", OPERATOR, "refused")
    assert refusal["details"]["code"] == "not_found" and "h_nosuchholding" in refusal["details"]["reason"]

    mine = by_actor.json()
    assert mine == [e for e in log if e["actor"] == OPERATOR]
    assert mine == log  # init and every later command ran at this same shell
    assert {"holding.import", "key.unwrap", "key.destroy", "holding.shred"} <= {e["action"] for e in mine}

    assert future.code == 0 and future.json() == []
    assert since_view.json() == [e for e in log if e["time"] >= view["time"]]
    assert 0 < len(since_view.json()) < len(log)

    assert table.code == 0, table.err
    assert "Audit log" in table.out and hid in table.out and OPERATOR in table.out
    for action in ("holding.import", "holding.view", "holding.export", "holding.shred"):
        assert action in table.out


def test_checkpoints_and_proofs_verify_as_a_partner_would(cli: Cli, node: Node) -> None:
    node.add_user(ORG, "ann", Role.CASEWORKER)  # so the first checkpoint's tree is not a perfect one
    first = cli("audit", "checkpoint", "--org", ORG, "--json")
    assert first.code == 0, first.err
    signed_small = first.json()
    small = note_checkpoint(signed_small)
    assert small.size == len(node.audit.entries(ORG)) > 0
    # The signature covers the body: the same note claiming another size does not open.
    forged = signed_small["note"].replace(f"\n{small.size}\n", f"\n{small.size + 1}\n", 1)
    assert forged != signed_small["note"]
    with pytest.raises(IntegrityError):
        open_note(forged, *parse_verifier_key(signed_small["verifier_key"]))

    for name in ("sam", "kim", "lee"):  # the log grows by two entries per user
        node.add_user(ORG, name, Role.CASEWORKER)
    second = cli("audit", "checkpoint", "--org", ORG, "--json")
    assert second.code == 0, second.err
    big = note_checkpoint(second.json())
    entries = [e.to_json() for e in node.audit.entries(ORG)]
    assert big.size == len(entries) == small.size + 6 and big.root_hash != small.root_hash

    last = big.size - 1
    (again, last_leaf, in_small, consistency, both, neither) = run_all(
        cli,
        ("audit", "checkpoint", "--org", ORG, "--json"),
        ("audit", "proof", "--org", ORG, "--index", str(last)),
        ("audit", "proof", "--org", ORG, "--index", "2", "--size", str(small.size)),
        ("audit", "proof", "--org", ORG, "--from", str(small.size), "--to", str(big.size)),
        ("audit", "proof", "--org", ORG, "--index", "1", "--from", "2"),
        ("audit", "proof", "--org", ORG),
    )
    # Nothing was added since: signing again gives the same checkpoint.
    assert again.code == 0, again.err
    assert again.json()["tree_size"] == big.size and again.json()["note"] == second.json()["note"]

    for result, index, checkpoint in ((last_leaf, last, big), (in_small, 2, small)):
        assert result.code == 0, result.err
        proof = result.json()
        assert (proof["type"], proof["index"], proof["tree_size"]) == ("inclusion", index, checkpoint.size)
        # The leaf is hashed here from the entry text given, and that text is the logged event.
        record, logged = json.loads(proof["entry"]), entries[index]
        assert {k: record[k] for k in ("time", "actor", "action", "object", "outcome", "details")} == {
            k: logged[k] for k in ("time", "actor", "action", "object", "outcome", "details")}
        leaf = leaf_hash(proof["entry"].encode("utf-8"))
        hashes = b64decode_all(proof["hashes"])
        verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root_hash)
        with pytest.raises(IntegrityError):  # the same path does not place another entry there
            verify_inclusion(leaf_hash(b"another entry"), index, checkpoint.size, hashes, checkpoint.root_hash)
    proof = last_leaf.json()
    with pytest.raises(IntegrityError):  # nor does it lead to the other checkpoint's root
        verify_inclusion(leaf_hash(proof["entry"].encode()), last, big.size, b64decode_all(proof["hashes"]),
                         small.root_hash)
    assert proof["checkpoint"] == second.json()["note"]
    assert in_small.json()["checkpoint"] == signed_small["note"]

    assert consistency.code == 0, consistency.err
    proof = consistency.json()
    assert (proof["type"], proof["from"], proof["to"]) == ("consistency", small.size, big.size)
    hashes = b64decode_all(proof["hashes"])
    verify_consistency(small.size, big.size, hashes, small.root_hash, big.root_hash)
    with pytest.raises(IntegrityError):
        verify_consistency(small.size, big.size, hashes, big.root_hash, small.root_hash)

    for bad in (both, neither):
        one_line_refusal(bad, 2)


def test_proof_of_an_index_beyond_the_log_is_refused_with_exit_1(cli: Cli, node: Node) -> None:
    size = len(node.audit.entries(ORG))
    refused = cli("audit", "proof", "--org", ORG, "--index", str(size))
    assert str(size) in one_line_refusal(refused, 1)


def test_verify_names_the_tampered_index_and_a_saved_checkpoint_catches_a_rewrite(
        cli: Cli, node: Node, db_url: str | None, tmp_path: Path) -> None:
    for name in ("sam", "kim"):
        node.add_user(ORG, name, Role.CASEWORKER)
    signed = cli("audit", "checkpoint", "--org", ORG, "--json")
    assert signed.code == 0, signed.err
    size = signed.json()["tree_size"]
    assert size > 5
    saved = tmp_path / "saved-checkpoint.txt"
    saved.write_text(signed.json()["note"], encoding="utf-8")

    plain, with_saved = run_all(cli, ("audit", "verify", "--org", ORG, "--json"),
                                ("audit", "verify", "--org", ORG, "--checkpoint", str(saved)))
    assert plain.code == 0, plain.err
    assert plain.json() == {"organisation": ORG, "verified": True, "tree_size": size,
                            "root_hash": signed.json()["root_hash"], "checkpoints_checked": [size]}
    assert with_saved.code == 0, with_saved.err
    assert f"{size} entries" in with_saved.out

    tamper_entry(node.layout.home, db_url, ORG, 5)
    assert "index 5" in one_line_refusal(cli("audit", "verify", "--org", ORG), 1)

    # A full rewrite: a different history of the same length, every hash recomputed by the core itself.
    with database(node.layout.home, db_url) as run:
        run("DELETE FROM audit_nodes WHERE org_id = :org", org=ORG)
        run("DELETE FROM audit_entries WHERE org_id = :org", org=ORG)
        run("UPDATE audit_heads SET size = 0, frontier = :empty WHERE org_id = :org", empty=b"", org=ORG)
    for i in range(size):
        node.audit.append(ORG, "cli:mallory", "holding.view", f"h_rewritten{i}")
    # The checkpoint stored in the database still catches it ...
    assert "index 0" in one_line_refusal(cli("audit", "verify", "--org", ORG), 1)
    with database(node.layout.home, db_url) as run:
        run("DELETE FROM audit_checkpoints WHERE org_id = :org", org=ORG)
    # ... and once that is gone too, only the copy saved elsewhere does.
    plain, with_saved = run_all(cli, ("audit", "verify", "--org", ORG),
                                ("audit", "verify", "--org", ORG, "--checkpoint", str(saved)))
    assert plain.code == 0, plain.err
    assert f"{size} entries, 0 checkpoints checked" in plain.out
    refusal = one_line_refusal(with_saved, 1)
    assert "index 0" in refusal and f"saved checkpoint of size {size}" in refusal


def test_the_documented_checkpoint_file_workflow(cli: Cli, node: Node, tmp_path: Path) -> None:
    printed = cli("audit", "checkpoint", "--org", ORG)
    assert printed.code == 0, printed.err
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(printed.out, encoding="utf-8")  # civicshare audit checkpoint > checkpoint.txt
    verified = cli("audit", "verify", "--org", ORG, "--checkpoint", str(saved))
    assert verified.code == 0, verified.err


def test_witness_lines_say_in_words_what_each_partner_holds() -> None:
    from civicshare.cli.audit import witness_words

    assert witness_words({"partner": "south-fen", "checkpoints": 3, "error": None}) == (
        "south-fen: all 3 checkpoints it holds match this log.")
    assert witness_words({"partner": "south-fen", "checkpoints": 1, "error": None}) == (
        "south-fen: the one checkpoint it holds matches this log.")
    # None held is not a match: it says so instead of "0 ... match".
    none = witness_words({"partner": "south-fen", "checkpoints": 0, "error": None})
    assert none.startswith("south-fen: holds no checkpoint of this log yet") and "match" not in none
    assert witness_words({"partner": "south-fen", "checkpoints": 0, "error": "unreachable"}) == (
        "south-fen: not checked: unreachable")
