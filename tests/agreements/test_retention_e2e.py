"""Black-box: two real `civicshare serve` nodes; a revoked agreement ends in verified deletion.

north-wold (on each backend in turn) shares a dataset with south-fen (SQLite) under an agreement
that lets it keep the data for a year, then revokes the agreement. With nobody acting, south-fen's
retention thread shreds the holding and its notice outbox carries the signed deletion certificate
back; north-wold's ledger then shows "deleted at recipient, certificate verified". (Retention
ending and agreements expiring take days, so they are tested in-process on a clock the test moves.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.nodes import NodeHome, agree, serving_pair, wait_for

SERVE = ("--deliver-every", "0.2", "--retry-base", "0.2", "--retention-every", "0.3")
CSV = "surname,first_name,postcode\nAbbott,Ann,NW1 1AA\nBrown,Bo,NW2 2BB\n"


@pytest.fixture
def pair(tmp_path: Path, db_url: str | None) -> Iterator[tuple[NodeHome, NodeHome]]:
    with serving_pair(tmp_path, db_url, *SERVE) as nodes:
        yield nodes


def _deletion(node: NodeHome, transfer_id: str) -> dict[str, Any] | None:
    deletion: dict[str, Any] | None = node.json("transfers", "show", transfer_id)["deletion"]
    return deletion


def _verified(node: NodeHome, transfer_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        deletion = _deletion(node, transfer_id)
        return deletion if deletion is not None and deletion["state"] == "verified" else None

    found: dict[str, Any] = wait_for(done, 60, what=f"the deletion certificate of {transfer_id} to be verified")
    return found


def test_revocation_ends_in_verified_deletion(pair: tuple[NodeHome, NodeHome], tmp_path: Path) -> None:
    north, south = pair
    (tmp_path / "residents.csv").write_text(CSV, encoding="utf-8")
    holding = north.import_dataset(tmp_path / "residents.csv", "Residents")["id"]
    yearly = agree(north, south, dataset="Residents", fields=["surname", "postcode"], days_after_receipt=365)
    sent = north.json("share", holding, "--to", "south-fen", "--agreement", yearly, "--wait", "--timeout", "60")
    assert sent["state"] == "delivered", sent
    due = _deletion(north, sent["id"])
    assert due is not None and due["state"] == "due" and due["words"].startswith("due on "), due
    arrived = {i["transfer"]: i for i in south.json("inbox")}[sent["id"]]
    assert arrived["deletion"]["words"].startswith("kept until ")

    north.json("agreement", "revoke", yearly, "--reason", "the project has closed")
    deletion = _verified(north, sent["id"])
    assert deletion["words"] == "deleted at recipient, certificate verified"
    body = deletion["certificate"]["body"]
    assert body["reason"].startswith("agreement revoked") and "the project has closed" in body["reason"]
    assert (body["transfer"], body["holding"], body["recipient"]) == (sent["id"], holding, "south-fen")

    # What each side shows.
    listed = {t["id"]: t for t in north.json("transfers", "list")}
    assert listed[sent["id"]]["deletion"]["state"] == "verified"
    assert "deleted" in north.run("transfers", "list").out  # the table's last column (it wraps)
    shown = north.run("transfers", "show", sent["id"]).out
    assert "deletion: deleted at recipient, certificate verified (deleted " in shown
    item = {i["transfer"]: i for i in south.json("inbox")}[sent["id"]]
    assert item["deletion"]["state"] == "deleted" and item["deletion"]["words"].startswith("deleted on ")
    held = {h["id"]: h for h in south.json("holdings", "list")}[item["holding"]]
    assert held["state"] == "shredded" and held["shredded_by"] == "node:retention"
    assert "deleted" in south.run("inbox").out
