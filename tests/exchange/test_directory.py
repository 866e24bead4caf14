"""Federation directories: operating one, trusting one, newer editions only, refresh. Both backends.

``node`` (north-wold and south-fen) operates the directory as north-wold; ``east`` (east-marsh, a
separate SQLite home) is a member that trusts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from civicshare.access import Actor, Role
from civicshare.canonical import canonical_json
from civicshare.crypto import KdfParams
from civicshare.db import tables as t
from civicshare.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SecurityError,
    Unreachable,
    UsageError,
)
from civicshare.exchange.card import key_text
from civicshare.exchange.directory import Directory, fingerprint, parse_directory
from civicshare.exchange.signed import sign_document
from civicshare.node import Node
from tests.conftest import PASSPHRASE, actor

NORTH, SOUTH, EAST = "north-wold", "south-fen", "east-marsh"
NAME = "Fenland Federation"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def admin(org: str) -> Actor:
    return actor(org, Role.ADMIN)


def card_of(node: Node, org: str) -> str:
    return json.dumps(node.card(actor(org, Role.CASEWORKER)))


def make_home(path: Path, org: str, *, url: str | None = None) -> Node:
    return Node.init(path, org, f"{org.replace('-', ' ').title()} Council", url=url, passphrase=PASSPHRASE,
                     kdf=KdfParams.fast_for_tests(), clock=Clock())


@pytest.fixture
def east(tmp_path: Path) -> Iterator[Node]:
    n = make_home(tmp_path / "east", EAST, url="https://east-marsh.example")
    yield n
    n.close()


def operate(node: Node, *members: tuple[Node, str]) -> Directory:
    """The node's first organisation starts the directory, lists the members and publishes edition 1."""
    operator = admin(node.organisations()[0].id) if len(node.organisations()) == 1 else admin(NORTH)
    node.directory_init(operator, NAME)
    for home, org in members:
        node.directory_add(operator, card_of(home, org))
    return node.directory_publish(operator)


def entries(node: Node, org: str, action: str) -> list[Any]:
    return [e for e in node.audit.entries(org) if e.action == action]


def test_operating_a_directory_publishes_signed_editions(node: Node, east: Node) -> None:
    edition = operate(node, (node, NORTH), (east, EAST))
    assert (edition.name, edition.serial, sorted(edition.members)) == (NAME, 1, [EAST, NORTH])
    assert edition.revocations == {}
    published = node.directory.published()
    assert published is not None and parse_directory(published) == edition
    assert (node.directory.published_path.stat().st_mode & 0o777) == 0o644
    # The operator key lives in its own keystore under the node passphrase, never in the state file.
    assert node.directory.keystore_path.exists()
    assert "PRIVATE" not in node.directory.state_path.read_text().upper()

    revocation = node.directory_revoke(admin(NORTH), EAST, "signing key lost")
    second = node.directory_publish(admin(NORTH))
    assert second.serial == 2 and second.revocations[EAST] == revocation
    assert second.operator_key == edition.operator_key and EAST in second.members

    created = entries(node, NORTH, "directory.create")[-1]
    assert (created.object, created.outcome) == (NAME, "ok")
    assert created.details["fingerprint"] == fingerprint(edition.operator_key)
    assert [e.object for e in entries(node, NORTH, "directory.member")] == [NORTH, EAST]
    revoked = entries(node, NORTH, "directory.revoke")[-1]
    assert (revoked.object, revoked.details["reason"], revoked.details["was_member"]) == (EAST, "signing key lost",
                                                                                          True)
    published_entries = entries(node, NORTH, "directory.publish")
    assert [(e.object, e.details["serial"]) for e in published_entries] == [(NAME, 1), (NAME, 2)]
    assert entries(node, SOUTH, "directory.create") == []


def test_operator_mistakes_are_refused(node: Node, east: Node) -> None:
    with pytest.raises(NotFound, match="does not operate a directory"):
        node.directory_publish(admin(NORTH))
    with pytest.raises(PermissionDenied):
        node.directory_init(actor(NORTH, Role.RECORDS_MANAGER), NAME)
    assert entries(node, NORTH, "directory.create")[-1].outcome == "refused"
    with pytest.raises(UsageError, match="needs a name"):
        node.directory_init(admin(NORTH), " ")
    operate(node)
    with pytest.raises(Conflict, match="already operates"):
        node.directory_init(admin(SOUTH), "Another")
    tampered = json.loads(card_of(east, EAST))
    tampered["body"]["name"] = "Someone Else"
    with pytest.raises(SecurityError, match="does not verify"):
        node.directory_add(admin(NORTH), json.dumps(tampered))
    assert entries(node, NORTH, "directory.member")[-1].outcome == "refused"
    node.directory_revoke(admin(NORTH), EAST)
    with pytest.raises(Conflict, match="already revoked"):
        node.directory_revoke(admin(NORTH), EAST)


def test_trusting_a_directory_pins_the_operator_key(node: Node, east: Node, tmp_path: Path) -> None:
    edition = operate(node, (node, NORTH), (east, EAST))
    path = node.directory.published_path
    trusted, change = east.use_directory(admin(EAST), str(path))
    assert change == "new" and (trusted.name, trusted.serial, trusted.org_id) == (NAME, 1, EAST)
    assert trusted.operator_key == edition.operator_key and trusted.source == str(path.resolve())
    entry = entries(east, EAST, "directory.trust")[-1]
    assert (entry.object, entry.outcome, entry.details["change"]) == (NAME, "ok", "new")
    assert entry.details["fingerprint"] == fingerprint(edition.operator_key)

    assert east.use_directory(admin(EAST), str(path))[1] == "unchanged"
    node.directory_revoke(admin(NORTH), NORTH, "testing")
    node.directory_publish(admin(NORTH))
    trusted, change = east.use_directory(admin(EAST), str(path))
    assert (change, trusted.serial) == ("newer", 2)
    listed, current = east.trusted_directory(admin(EAST), NAME)
    assert listed == trusted and NORTH in current.revocations
    assert east.trusted_directories(admin(EAST)) == [trusted]
    with pytest.raises(NotFound):
        east.trusted_directory(admin(EAST), "Nope")
    with pytest.raises(PermissionDenied):
        east.use_directory(actor(EAST, Role.RECORDS_MANAGER), str(path))
    assert east.trusted_directories(actor(EAST, Role.RECORDS_MANAGER)) == [trusted]


def test_operator_key_given_must_match(node: Node, east: Node) -> None:
    edition = operate(node, (node, NORTH))
    path = str(node.directory.published_path)
    with pytest.raises(SecurityError, match="not the pinned key"):
        east.use_directory(admin(EAST), path, operator_key=key_text(east.keys.signing_key(EAST)[1]))
    assert entries(east, EAST, "directory.trust")[-1].outcome == "refused"
    assert east.trusted_directories(admin(EAST)) == []
    assert east.use_directory(admin(EAST), path, operator_key=key_text(edition.operator_key))[1] == "new"


def _fork(node: Node, serial: int) -> None:
    """Make the operator sign a different edition under an old serial (what a compromised operator could)."""
    state = json.loads(node.directory.state_path.read_text())
    state["serial"] = serial - 1
    node.directory.state_path.write_bytes(canonical_json(state))


def test_older_forked_or_foreign_editions_are_refused(node: Node, east: Node, tmp_path: Path) -> None:
    operate(node, (node, NORTH))
    path = node.directory.published_path
    saved = tmp_path / "edition-1.json"
    saved.write_bytes(path.read_bytes())
    node.directory_publish(admin(NORTH))
    east.use_directory(admin(EAST), str(path))
    with pytest.raises(SecurityError, match="older than the 2 already accepted"):
        east.use_directory(admin(EAST), str(saved))
    _fork(node, 2)
    node.directory_add(admin(NORTH), card_of(east, EAST))
    node.directory_publish(admin(NORTH))
    with pytest.raises(SecurityError, match="two editions under one serial"):
        east.use_directory(admin(EAST), str(path))

    # A directory of the same name from another operator is not an edition of the one trusted.
    other = make_home(tmp_path / "other", "west-fen")
    try:
        other.directory_init(admin("west-fen"), NAME)
        other.directory_publish(admin("west-fen"))
        other.directory_publish(admin("west-fen"))
        other.directory_publish(admin("west-fen"))
        with pytest.raises(SecurityError, match="not by the pinned operator key"):
            east.use_directory(admin(EAST), str(other.directory.published_path))
    finally:
        other.close()
    assert east.trusted_directories(admin(EAST))[0].serial == 2


def test_malformed_directories_are_refused(node: Node, east: Node, tmp_path: Path) -> None:
    operate(node, (node, NORTH))
    document = json.loads(node.directory.published_path.read_text())
    tampered = tmp_path / "tampered.json"
    document["body"]["serial"] = 99
    tampered.write_text(json.dumps(document))
    with pytest.raises(SecurityError, match="does not verify"):
        east.use_directory(admin(EAST), str(tampered))
    with pytest.raises(InvalidInput, match="not a civicshare signed document|directory"):
        east.use_directory(admin(EAST), card_path(east, tmp_path))
    with pytest.raises(UsageError, match="no directory file"):
        east.use_directory(admin(EAST), str(tmp_path / "missing.json"))
    key_id, public = east.keys.signing_key(EAST)
    store = east.keystore(EAST)
    body = {"name": NAME, "operator_key": key_text(public), "serial": 1, "issued": "2026-01-01T00:00:00Z",
            "members": [json.loads(card_of(east, EAST))] * 2, "revocations": []}
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(sign_document("directory", body, key_id, lambda d: store.sign(key_id, d))))
    with pytest.raises(InvalidInput, match="lists east-marsh twice"):
        east.use_directory(admin(EAST), str(twice))


def card_path(node: Node, tmp_path: Path) -> str:
    path = tmp_path / "card.json"
    path.write_text(card_of(node, EAST))
    return str(path)


def test_refresh_keeps_newer_editions_and_records_failures(node: Node, east: Node) -> None:
    operate(node, (node, NORTH), (east, EAST))
    east.use_directory(admin(EAST), str(node.directory.published_path))
    assert east.refresh_directories() == []
    node.directory_revoke(admin(NORTH), NORTH, "merged")
    node.directory_publish(admin(NORTH))
    assert east.refresh_directories() == [f"{EAST}/{NAME}"]
    trusted = east.trusted_directories(admin(EAST))[0]
    assert trusted.serial == 2 and trusted.last_error is None
    entry = entries(east, EAST, "directory.trust")[-1]
    assert (entry.actor, entry.object, entry.details["change"], entry.details["serial"]) == (
        "node:directory-refresh", NAME, "newer", 2)

    node.directory.published_path.unlink()
    assert east.refresh_directories() == []
    trusted = east.trusted_directories(admin(EAST))[0]
    assert trusted.serial == 2 and "no directory file" in (trusted.last_error or "")


def test_refresh_from_an_unreachable_url_records_the_error(node: Node, east: Node) -> None:
    operate(node, (node, NORTH))
    east.use_directory(admin(EAST), str(node.directory.published_path))
    with east.db.engine.begin() as conn:
        conn.execute(update(t.trusted_directories).values(source="http://127.0.0.1:9/directory.json"))
    east.clock.now += timedelta(seconds=5)  # type: ignore[attr-defined]
    assert east.refresh_directories() == []
    trusted = east.trusted_directories(admin(EAST))[0]
    assert "could not be fetched" in (trusted.last_error or "") and trusted.serial == 1
    with pytest.raises(Unreachable, match="could not be fetched"):
        east.use_directory(admin(EAST), "http://127.0.0.1:9/directory.json")
