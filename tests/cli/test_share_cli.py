"""The offline route through the real command: share --out, receive at the partner, carry the receipt back.

The sender's home (north-wold) runs on each backend in turn; the partner's (south-fen) is a second
home on SQLite, as two councils' nodes would be. The two sign a data sharing agreement for plain-text
documents first (over the network, both serving); the package then travels by hand under it.
"""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nodes import CliResult, NodeHome, agree, exchange_cards

DOCUMENT = b"Minutes of the joint committee\n" + bytes(range(256)) * 40


@pytest.fixture
def pair(tmp_path: Path, db_url: str | None) -> Iterator[tuple[NodeHome, NodeHome, str]]:
    """north-wold and south-fen, pinning each other, with an agreement for text documents in force."""
    north = NodeHome.create(tmp_path / "north", "north-wold", "North Wold District Council", db_url=db_url)
    south = NodeHome.create(tmp_path / "south", "south-fen", "South Fen Borough Council")
    try:
        exchange_cards(north, south)
        north.start("--deliver-every", "0.2")
        south.start("--deliver-every", "0.2")
        agreement = agree(north, south, documents=True, media_types=["text/plain"])
        north.stop()
        south.stop()
        yield north, south, agreement
    finally:
        north.close()
        south.close()


def _run(node: NodeHome, *args: str) -> CliResult:
    return node.run(*args, check=False)


def test_offline_package_receipt_and_the_age_tool(pair: tuple[NodeHome, NodeHome, str], tmp_path: Path) -> None:
    north, south, agreement = pair
    (tmp_path / "minutes.txt").write_bytes(DOCUMENT)
    holding = north.import_document(tmp_path / "minutes.txt")["id"]

    package = tmp_path / "for-south-fen.tar"
    # No agreement named: refused, and no package is written.
    unnamed = _run(north, "share", holding, "--to", "south-fen", "--out", str(package))
    assert unnamed.code == 1 and "needs a data sharing agreement" in unnamed.err, unnamed.err
    assert not package.exists()

    shared = _run(north, "share", holding, "--to", "south-fen", "--agreement", agreement, "--out", str(package),
                  "--json")
    assert shared.code == 0, shared.err
    sent = shared.json()
    assert (sent["state"], sent["route"], sent["agreement"]) == ("exported", "offline", agreement)
    with tarfile.open(package) as tar:
        assert tar.getnames() == ["manifest.json", "payload.age"]
        payload = tar.extractfile("payload.age").read()  # type: ignore[union-attr]
    (tmp_path / "payload.age").write_bytes(payload)

    # The payload opens with the standard age tool and south-fen's exported identity.
    identity = tmp_path / "south.identity"
    assert _run(south, "keys", "export", "--age-identity", "--out", str(identity)).code == 0
    opened = subprocess.run(["/usr/bin/age", "-d", "-i", str(identity), str(tmp_path / "payload.age")],
                            capture_output=True, timeout=60)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == DOCUMENT

    received = _run(south, "receive", str(package))
    assert received.code == 0, received.err
    new_holding = received.out.strip()
    receipt = Path(str(package) + ".receipt.json")
    assert new_holding.startswith("h_") and receipt.exists()
    again = _run(south, "receive", str(package), "--json")
    assert again.code == 0 and again.json()["holding"] == new_holding  # the same holding, no second one
    inbox = south.inbox()
    assert [(i["transfer"], i["state"], i["route"], i["holding"]) for i in inbox] == [
        (sent["id"], "delivered", "offline", new_holding)]

    back = _run(north, "receive", str(receipt))
    assert back.code == 0, back.err
    assert "delivered" in back.out
    ledger = north.transfer(sent["id"])
    assert ledger["state"] == "delivered" and ledger["receipt_verified"] is True

    # Over the network with no server running: --wait gives up, the transfer stays queued.
    waiting = _run(north, "share", holding, "--to", "south-fen", "--agreement", agreement, "--wait", "--timeout", "1")
    assert waiting.code == 1 and "gave up waiting" in waiting.err
    assert [t["state"] for t in north.transfers()] == ["delivered", "queued"]
