"""Witnessing: keeping partners' checkpoints, refusing forgeries and forks, and catching a rewritten log."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from civicshare.access import Actor
from civicshare.audit import verify_log
from civicshare.audit.log import origin_for
from civicshare.audit.note import Checkpoint, sign_note
from civicshare.db import tables as t
from civicshare.errors import AuditTampered, IntegrityError, InvalidInput
from civicshare.node import Node

NORTH, SOUTH = "north-wold", "south-fen"


def _checkpoint(node: Node, org: str) -> str:
    return node.audit_checkpoint(Actor.operator(org, "tester")).note


def _verifier(node: Node, org: str) -> str:
    return node.audit.verifier_key(org, node.keys.signing_key(org)[1])


def _witness_entries(node: Node, org: str) -> list:
    return [e for e in node.audit.entries(org) if e.action == "witness.checkpoint"]


def test_a_partners_checkpoint_is_kept_once_and_logged(node: Node) -> None:
    note = _checkpoint(node, NORTH)
    kept = node.witnesses.keep(SOUTH, NORTH, note, _verifier(node, NORTH), via="receipt")
    again = node.witnesses.keep(SOUTH, NORTH, note, _verifier(node, NORTH), via="exchange")
    assert kept == again and kept.note == note and kept.subject == NORTH
    assert [w.note for w in node.witnesses.held(SOUTH, NORTH)] == [note]
    assert node.witnesses.held(NORTH, NORTH) == [] and node.witnesses.held(SOUTH, SOUTH) == []
    entries = _witness_entries(node, SOUTH)
    assert len(entries) == 1 and entries[0].outcome == "ok" and entries[0].details["via"] == "receipt"


def test_held_checkpoints_come_newest_first(node: Node) -> None:
    first = _checkpoint(node, NORTH)
    node.audit.append(NORTH, "tester", "holding.view", "h_x")
    second = _checkpoint(node, NORTH)
    for note in (first, second):
        node.witnesses.keep(SOUTH, NORTH, note, _verifier(node, NORTH), via="exchange")
    held = node.witnesses.held(SOUTH, NORTH)
    assert [w.note for w in held] == [second, first] and held[0].size > held[1].size
    assert [w.note for w in node.witnesses.latest(SOUTH)] == [second]


def test_a_checkpoint_signed_with_another_key_is_refused_and_logged(node: Node) -> None:
    # South-fen's key signs a note that claims to be north-wold's log.
    key_id, public = node.keys.signing_key(SOUTH)
    body = Checkpoint(origin_for(NORTH), 3, b"\x01" * 32).body()
    forged = sign_note(body, origin_for(NORTH), public, lambda d: node.keystore(SOUTH).sign(key_id, d))
    with pytest.raises(IntegrityError):
        node.witnesses.keep(SOUTH, NORTH, forged, _verifier(node, NORTH), via="exchange")
    assert node.witnesses.held(SOUTH, NORTH) == []
    assert [e.outcome for e in _witness_entries(node, SOUTH)] == ["refused"]


def test_a_checkpoint_of_another_log_is_refused(node: Node) -> None:
    with pytest.raises(IntegrityError):
        node.witnesses.keep(NORTH, SOUTH, _checkpoint(node, NORTH), _verifier(node, SOUTH), via="exchange")


def test_garbage_is_invalid_input(node: Node) -> None:
    with pytest.raises(InvalidInput):
        node.witnesses.keep(SOUTH, NORTH, "not a note\n", _verifier(node, NORTH), via="exchange")
    with pytest.raises(InvalidInput):
        node.witnesses.keep(SOUTH, NORTH, "x" * 20000, _verifier(node, NORTH), via="exchange")


def test_two_different_roots_for_one_size_are_a_fork(node: Node) -> None:
    note = _checkpoint(node, NORTH)
    node.witnesses.keep(SOUTH, NORTH, note, _verifier(node, NORTH), via="exchange")
    size = node.witnesses.held(SOUTH, NORTH)[0].size
    key_id, public = node.keys.signing_key(NORTH)
    other = sign_note(Checkpoint(origin_for(NORTH), size, b"\x02" * 32).body(), origin_for(NORTH), public,
                      lambda d: node.keystore(NORTH).sign(key_id, d))
    with pytest.raises(IntegrityError, match="two different audit logs"):
        node.witnesses.keep(SOUTH, NORTH, other, _verifier(node, NORTH), via="exchange")
    refused = [e for e in _witness_entries(node, SOUTH) if e.outcome == "refused"]
    assert refused and refused[-1].details["code"] == "fork"


def _rewrite_history(node: Node, org: str, events: int) -> None:
    """What a dishonest operator with the database and the key can do: replace the whole log with
    another history, every hash recomputed and every checkpoint signed again."""
    with node.db.engine.begin() as conn:
        for table in (t.audit_entries, t.audit_nodes, t.audit_checkpoints):
            conn.execute(delete(table).where(table.c.org_id == org))
        conn.execute(update(t.audit_heads).where(t.audit_heads.c.org_id == org).values(size=0, frontier=b""))
    for n in range(events):
        node.audit.append(org, "operator", "holding.view", f"h_{n}")
    _checkpoint(node, org)


def test_a_rewritten_log_passes_alone_but_not_against_a_partners_checkpoint(node: Node) -> None:
    node.audit.append(NORTH, "alice", "holding.export", "h_secret")
    seen = _checkpoint(node, NORTH)
    node.witnesses.keep(SOUTH, NORTH, seen, _verifier(node, NORTH), via="receipt")
    size = node.witnesses.held(SOUTH, NORTH)[0].size
    public = node.keys.signing_key(NORTH)[1]

    _rewrite_history(node, NORTH, size + 2)
    # The rewritten log is internally consistent: without witnesses nothing is found.
    assert verify_log(node.audit, NORTH, public).size == size + 2
    # The checkpoint south-fen kept is not: the rewrite is caught.
    held = [w.note for w in node.witnesses.held(SOUTH, NORTH)]
    with pytest.raises(AuditTampered, match="does not match the log"):
        verify_log(node.audit, NORTH, public, held)
