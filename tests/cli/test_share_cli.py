"""The offline route through the real command: share --out, receive at the partner, carry the receipt back.

The sender's home (north-wold) runs on each backend in turn; the partner's (south-fen) is a second
home on SQLite, as two councils' nodes would be.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from tests.cli.conftest import Cli
from tests.cli.test_partners_cli import new_home

DOCUMENT = b"Minutes of the joint committee\n" + bytes(range(256)) * 40


def test_offline_package_receipt_and_the_age_tool(initialised: Cli, tmp_path: Path) -> None:
    north = initialised
    south = new_home(tmp_path, "south", "south-fen")
    for giver, taker, name in ((north, south, "north.card"), (south, north, "south.card")):
        assert giver("card", "--out", str(tmp_path / name)).code == 0
        assert taker("partner", "add", str(tmp_path / name)).code == 0
    (tmp_path / "minutes.txt").write_bytes(DOCUMENT)
    imported = north("import", str(tmp_path / "minutes.txt"), "--document", "--json")
    assert imported.code == 0, imported.err
    holding = imported.json()["id"]

    package = tmp_path / "for-south-fen.tar"
    shared = north("share", holding, "--to", "south-fen", "--out", str(package), "--json")
    assert shared.code == 0, shared.err
    sent = shared.json()
    assert (sent["state"], sent["route"]) == ("exported", "offline")
    with tarfile.open(package) as tar:
        assert tar.getnames() == ["manifest.json", "payload.age"]
        payload = tar.extractfile("payload.age").read()  # type: ignore[union-attr]
    (tmp_path / "payload.age").write_bytes(payload)

    # The payload opens with the standard age tool and south-fen's exported identity.
    identity = tmp_path / "south.identity"
    assert south("keys", "export", "--age-identity", "--out", str(identity)).code == 0
    opened = subprocess.run(["/usr/bin/age", "-d", "-i", str(identity), str(tmp_path / "payload.age")],
                            capture_output=True, timeout=60)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == DOCUMENT

    received = south("receive", str(package))
    assert received.code == 0, received.err
    new_holding = received.out.strip()
    receipt = Path(str(package) + ".receipt.json")
    assert new_holding.startswith("h_") and receipt.exists()
    again = south("receive", str(package), "--json")
    assert again.code == 0 and again.json()["holding"] == new_holding  # the same holding, no second one
    inbox = south("inbox", "--json")
    assert [(i["transfer"], i["state"], i["route"], i["holding"]) for i in inbox.json()] == [
        (sent["id"], "delivered", "offline", new_holding)]

    back = north("receive", str(receipt))
    assert back.code == 0, back.err
    assert "delivered" in back.out
    ledger = north("transfers", "show", sent["id"], "--json")
    assert ledger.json()["state"] == "delivered" and ledger.json()["receipt_verified"] is True

    # Over the network with no server running: --wait gives up, the transfer stays queued.
    waiting = north("share", holding, "--to", "south-fen", "--wait", "--timeout", "1")
    assert waiting.code == 1 and "gave up waiting" in waiting.err
    listed = north("transfers", "list", "--json")
    assert [t["state"] for t in listed.json()] == ["delivered", "queued"]
