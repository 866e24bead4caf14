"""kill -9 of the recipient or the sender mid-transfer, at several points: every transfer is delivered once.

Two real nodes (``civicshare serve`` processes on loopback, SQLite homes) share one imported
document of random bytes again and again (``CIVICSHARE_FAULT_DOC_MB``, default 48 MiB, six parts
and a short tail). For each scenario the test starts a share, waits for a kill point, SIGKILLs one
node by its own pid, restarts it, and then, through the CLI only, asserts that the transfer ends
``delivered`` with a verified receipt in bounded time, that the recipient's inbox holds exactly one
delivered entry for it (and that no transfer ever appears twice), and that the recipient's export
is byte-identical (sha256) to the document sent. A transfer that misses any of these is a loss;
losses must be zero. The kill points are timed by reading the ledgers read-only (a CLI call takes
about a second, a transfer a few), never by sleeping blindly.
The two nodes sign a data sharing agreement for the document first, and every share names it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.nodes import (
    NodeError,
    NodeHome,
    agree,
    announce,
    exchange_cards,
    random_file,
    sha256_file,
    wait_for,
)

DOC_MB = int(os.environ.get("CIVICSHARE_FAULT_DOC_MB", "48"))
SERVE = ("--deliver-every", "0.2", "--retry-base", "0.1")
DELIVERY_TIMEOUT = 90.0
SENDER, RECIPIENT = "north-wold", "south-fen"
# What ``import --document`` records for a .bin file; the agreement allows exactly that.
MEDIA_TYPE = "application/octet-stream"


@dataclass
class Tally:
    transfers: int = 0
    kills: int = 0
    losses: int = 0
    struck_at: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"kill faults: transfers={self.transfers} kills={self.kills} losses={self.losses} "
                f"(struck at: {'; '.join(self.struck_at)})")


@dataclass
class Pair:
    north: NodeHome
    south: NodeHome
    holding: str
    agreement: str
    sha256: str
    size: int
    root: Path
    tally: Tally


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("kill")
    north = NodeHome.create(root / "north", SENDER, "North Wold District Council")
    south = NodeHome.create(root / "south", RECIPIENT, "South Fen Borough Council")
    tally = Tally()
    try:
        exchange_cards(north, south)
        document = random_file(root / "document.bin", DOC_MB << 20)
        holding = north.import_document(document)["id"]
        north.start(*SERVE)
        south.start(*SERVE)
        agreement = agree(north, south, documents=True, media_types=[MEDIA_TYPE])
        yield Pair(north, south, holding, agreement, sha256_file(document), DOC_MB << 20, root, tally)
    finally:
        north.stop()
        south.stop()
        (root / "summary.txt").write_text(tally.line() + "\n")
        announce(request.config, tally.line())


def _strike_when(condition: Callable[[], bool], what: str) -> None:
    wait_for(condition, timeout=60, interval=0.005, what=what)


def _share(pair: Pair) -> tuple[str, Callable[[], None]]:
    """Start a share; its transfer id as soon as the ledger has it, and a check that the command succeeded.

    The share command rings the serving node, which starts delivering before the command has exited,
    so the kill points are watched from the moment the transfer is recorded, not from the command's end.
    """
    before = {row[0] for row in pair.north.peek("SELECT id FROM transfers")}
    command = pair.north.launch("share", pair.holding, "--to", RECIPIENT, "--agreement", pair.agreement, "--json")

    def recorded() -> str | None:
        new = {row[0] for row in pair.north.peek("SELECT id FROM transfers")} - before
        assert len(new) <= 1, new
        return new.pop() if new else None

    transfer = str(wait_for(recorded, timeout=60, interval=0.005, what="the share to be recorded"))

    def finished() -> None:
        out, err = command.communicate(timeout=120)
        assert command.returncode == 0, err
        assert json.loads(out)["id"] == transfer

    return transfer, finished


def _settle(pair: Pair, transfer: str) -> None:
    """The transfer ends delivered exactly once, byte-identical; otherwise it is counted as a loss."""
    north, south = pair.north, pair.south
    try:
        # Wait on the ledger itself (fast), then judge through the CLI.
        wait_for(lambda: north.sent(transfer)[0] in ("delivered", "failed"), timeout=DELIVERY_TIMEOUT,
                 interval=0.1, what=f"{transfer} to be delivered")
        detail = north.transfer(transfer)
        assert detail["state"] == "delivered" and detail["receipt_verified"], detail
        assert detail["bytes_sent"] == detail["size"]
        inbox = south.inbox()
        mine = [item for item in inbox if item["transfer"] == transfer]
        assert len(mine) == 1 and mine[0]["state"] == "delivered", mine
        # Exactly once overall: no transfer id twice, no holding twice, one delivered entry per share.
        delivered = [item for item in inbox if item["state"] == "delivered"]
        assert len({item["transfer"] for item in delivered}) == len(delivered) == pair.tally.transfers
        assert len({item["holding"] for item in delivered}) == len(delivered)
        assert detail["receipt"]["body"]["holding"] == mine[0]["holding"]
        copy = south.export(mine[0]["holding"], pair.root / f"{transfer}.out")
        try:
            assert sha256_file(copy) == pair.sha256
        finally:
            copy.unlink()
    except (AssertionError, NodeError):
        pair.tally.losses += 1
        raise


# (who is killed, the kill point, when it is reached)
POINTS: dict[str, Callable[[Pair, str], bool]] = {
    # The recipient has the manifest and perhaps a part or two.
    "manifest": lambda p, t: p.south.arrived(t)[0] != "missing",
    # Part way through the parts.
    "mid-parts": lambda p, t: p.north.sent(t)[1] >= p.size * 0.4,
    # Every part acknowledged: the commit is about to go, or on its way.
    "before-commit": lambda p, t: p.north.sent(t)[1] >= p.north.sent(t)[2] > 0,
    # The recipient has stored the holding and signed the receipt; the sender may not have it yet.
    "after-commit": lambda p, t: p.south.arrived(t)[0] == "delivered",
}
# Six of the eight pairs: the recipient before commit and the sender after the manifest add little
# to their neighbours, and the whole fault folder must stay under about four minutes.
SCENARIOS = [("recipient", "manifest"), ("recipient", "mid-parts"), ("recipient", "after-commit"),
             ("sender", "mid-parts"), ("sender", "before-commit"), ("sender", "after-commit")]


@pytest.mark.parametrize(("victim", "point"), SCENARIOS, ids=[f"{v}-{p}" for v, p in SCENARIOS])
def test_kill_mid_transfer_still_delivers_exactly_once(pair: Pair, victim: str, point: str) -> None:
    node = pair.south if victim == "recipient" else pair.north
    transfer, finished = _share(pair)
    pair.tally.transfers += 1
    _strike_when(lambda: POINTS[point](pair, transfer), f"{transfer} to reach {point}")
    node.kill()
    pair.tally.kills += 1
    finished()
    state, sent, size = pair.north.sent(transfer)
    pair.tally.struck_at.append(f"{victim} at {point}: {state} {sent * 100 // max(size, 1)}% acknowledged, "
                                f"recipient {pair.south.arrived(transfer)[0]}")
    time.sleep(0.2)  # the survivor notices: a refused connection, or an answer that never comes
    node.restart()
    _settle(pair, transfer)
