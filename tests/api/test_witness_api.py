"""Black-box: `civicshare serve` swaps checkpoints with partners by itself, and `audit verify --witnesses`
then checks the log against what the partner kept."""

from __future__ import annotations

import json
import time
from pathlib import Path

from civicshare.access import Actor
from civicshare.crypto import KdfParams
from civicshare.node import Node
from tests.api.conftest import free_port, start_home
from tests.cli.conftest import Cli
from tests.conftest import PASSPHRASE

NORTH, SOUTH = "north-wold", "south-fen"


def test_serve_swaps_checkpoints_and_verify_with_witnesses_uses_them(tmp_path: Path, db_url: str | None) -> None:
    port = free_port()
    home = tmp_path / "home"
    with Node.init(home, NORTH, "North Wold", url=f"http://127.0.0.1:{port}", db_url=db_url,
                   passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests()) as node:
        node.add_organisation(SOUTH, "South Fen")
        for org, partner in ((NORTH, SOUTH), (SOUTH, NORTH)):
            node.add_partner(Actor.operator(org), json.dumps(node.card(Actor.operator(partner))))
    server = start_home(home, tmp_path / "server-tmp", port, "--witness-every", "0.5")
    try:
        cli = Cli(home, tmp_path / "cli-tmp")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with Node.open(home, passphrase=PASSPHRASE) as node:
                if node.witnesses.held(SOUTH, NORTH) and node.witnesses.held(NORTH, SOUTH):
                    break
            time.sleep(0.3)
        else:
            raise AssertionError("no checkpoints were swapped within 30 s:\n" + server.log.read_text())
        result = cli("audit", "verify", "--witnesses", "--org", NORTH, "--json")
        assert result.code == 0, result.err
        report = result.json()
        assert report["verified"] is True
        assert report["witnesses"][0]["partner"] == SOUTH and report["witnesses"][0]["checkpoints"] >= 1
        assert report["witnesses"][0]["error"] is None
    finally:
        server.stop()
    # With the partner's node down, the check is incomplete: named, and exit 1.
    result = cli("audit", "verify", "--witnesses", "--org", NORTH)
    assert result.code == 1 and SOUTH in result.out + result.err and "Traceback" not in result.err
