"""Black-box: two real `civicshare serve` nodes agree, then one revokes while the other is down.

north-wold (on each backend in turn) and south-fen (SQLite) pin each other's cards; ``agree`` drives
template, create, propose and both signatures through the CLI. south-fen then revokes while
north-wold's server is stopped: the revocation waits in south-fen's notice outbox (visible in
``agreement show``) and reaches north-wold once it serves again, without anyone acting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import NodeHome, agree, serving_pair, wait_for

SERVE = ("--deliver-every", "0.2", "--retry-base", "0.2")


@pytest.fixture
def pair(tmp_path: Path, db_url: str | None) -> Iterator[tuple[NodeHome, NodeHome]]:
    with serving_pair(tmp_path, db_url, *SERVE) as nodes:
        yield nodes


def test_agree_then_revoke_reaches_the_other_party(pair: tuple[NodeHome, NodeHome]) -> None:
    north, south = pair
    agreement_id = agree(north, south, dataset="Residents", fields=["surname", "postcode"])
    for node in (north, south):
        shown = node.json("agreement", "show", agreement_id)
        assert shown["state"] == "active" and shown["stop"] is None, shown
        assert sorted(s["party"] for s in shown["signatures"]) == ["north-wold", "south-fen"]
        assert {s["signed_by"] for s in shown["signatures"]} == {"dpo-officer"}
        assert shown["notices"] == []
    assert north.json("agreement", "show", agreement_id)["hash"] == south.json("agreement", "show",
                                                                                agreement_id)["hash"]

    north.stop()
    revoked = south.json("agreement", "revoke", agreement_id, "--reason", "the DPIA was withdrawn")
    assert revoked["state"] == "revoked" and revoked["revocation"]["by"] == "south-fen"
    assert [(n["kind"], n["recipient"], n["state"]) for n in revoked["notices"]] == [
        ("agreement-revocation", "north-wold", "pending")]
    assert "notice:          agreement-revocation of " in (shown := south.run("agreement", "show", agreement_id).out)
    assert "to north-wold: waiting (tried " in shown and "could not be reached" in shown

    north.restart()

    def revoked_at_north() -> bool:
        return bool(north.json("agreement", "show", agreement_id)["state"] == "revoked")

    wait_for(revoked_at_north, 60, what="the revocation to reach north-wold")
    text = north.run("agreement", "show", agreement_id).out
    assert f"in force:        no: agreement {agreement_id} was revoked by south-fen on " in text
    assert text.rstrip().endswith("the DPIA was withdrawn") or "the DPIA was withdrawn" in text
    wait_for(lambda: south.json("agreement", "show", agreement_id)["notices"] == [], 30,
             what="south-fen to see its revocation delivered")
    listed = {r["id"]: r["state"] for r in north.json("agreement", "list")}
    assert listed == {agreement_id: "revoked"}
