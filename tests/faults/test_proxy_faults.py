"""Transfers through a proxy that drops, delays, truncates and flips bytes: nothing corrupt is accepted.

The recipient's card points at a :class:`FaultProxy` in front of its real port, so every request
the sender's delivery worker makes crosses it. At the rates below, most transfers meet several
faults (a cut connection, a request closed mid-body, one bit flipped in a part, a manifest or an
answer). The test asserts, through the CLI only, that every transfer ends ``delivered`` with a
verified receipt in bounded time, that the recipient holds exactly one holding per transfer and
nothing else, and that each exported copy is byte-identical (sha256) to the document sent; and that
the proxy really did inject every kind of fault. It prints the counts.
The two councils first sign a data sharing agreement for the documents while the proxy
passes traffic untouched; then it starts damaging it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.faultproxy import Counts, FaultProxy, Policy
from tests.support.nodes import NodeHome, agree, announce, exchange_cards, random_file, sha256_file, wait_for

DOC_MB = int(os.environ.get("CIVICSHARE_FAULT_PROXY_MB", "24"))
TRANSFERS = int(os.environ.get("CIVICSHARE_FAULT_PROXY_TRANSFERS", "6"))
SEED = int(os.environ.get("CIVICSHARE_FAULT_SEED", "20261122"))
SERVE = ("--deliver-every", "0.2", "--retry-base", "0.05")
DELIVERY_TIMEOUT = 150.0
SENDER, RECIPIENT = "north-wold", "south-fen"
POLICY = Policy(drop=0.3, delay=0.2, truncate=0.1, flip_request=0.12, flip_response=0.1,
                drop_after=(1, 16 << 20), delay_seconds=(0.05, 0.3))


@dataclass
class Link:
    north: NodeHome
    south: NodeHome
    proxy: FaultProxy
    agreement: str
    root: Path


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Link]:
    root = tmp_path_factory.mktemp("proxy")
    proxy = FaultProxy(Policy(), seed=SEED).start()  # faults start once the agreement is in force
    north = south = None
    try:
        north = NodeHome.create(root / "north", SENDER, "North Wold District Council")
        # The recipient's card names the proxy; the proxy forwards to wherever it really listens.
        south = NodeHome.create(root / "south", RECIPIENT, "South Fen Borough Council", url=proxy.url)
        exchange_cards(north, south)
        south.start(*SERVE)
        proxy.upstream = south.address
        north.start(*SERVE)
        agreement = agree(north, south, documents=True, media_types=["application/octet-stream"])
        proxy.policy = POLICY
        yield Link(north, south, proxy, agreement, root)
    finally:
        for node in (north, south):
            if node is not None:
                node.stop()
        proxy.stop()


def test_faults_on_the_path_never_corrupt_and_never_lose_a_transfer(link: Link, request: pytest.FixtureRequest
                                                                    ) -> None:
    north, south, proxy = link.north, link.south, link.proxy
    documents: dict[str, str] = {}  # transfer id -> sha256 of what was sent

    def share(i: int) -> None:
        # A distinct document each time, so a part of one can never pass for a part of another.
        document = random_file(link.root / f"document{i}.bin", (DOC_MB << 20) + i * 4099)
        holding = north.import_document(document)["id"]
        documents[north.share(holding, RECIPIENT, agreement=link.agreement)["id"]] = sha256_file(document)
        document.unlink()

    for i in range(TRANSFERS):
        share(i)

    def settled() -> bool:
        # The ledger itself, read-only (fast); the verdict below goes through the CLI.
        return all(north.sent(t)[0] in ("delivered", "failed") for t in documents)

    losses = corrupt = 0
    owed: list[str] = []
    try:
        wait_for(settled, timeout=DELIVERY_TIMEOUT, interval=0.2, what="every transfer to be delivered")
        # Chance may have left a kind of fault out (how many requests there are depends on timing):
        # the proxy owes those to the next transfer. One that cannot strike (a flip owed to a request
        # a drop then cuts short) is owed again, to one more.
        for extra in range(3):
            missing = [fault for fault, count in _struck(proxy.counts).items() if not count]
            if not missing:
                break
            owed += missing
            proxy.owe(*missing)
            share(TRANSFERS + extra)
            wait_for(settled, timeout=DELIVERY_TIMEOUT, interval=0.2, what="every transfer to be delivered")
    finally:
        ledger = {t["id"]: t for t in north.transfers()}
        inbox = south.inbox()
        for transfer, digest in documents.items():
            mine = [item for item in inbox if item["transfer"] == transfer]
            if ledger[transfer]["state"] != "delivered" or len(mine) != 1 or mine[0]["state"] != "delivered":
                losses += 1
                continue
            copy = south.export(mine[0]["holding"], link.root / f"{transfer}.out")
            if sha256_file(copy) != digest:
                corrupt += 1
            copy.unlink()
        counts = proxy.counts
        line = (f"proxy faults: transfers={len(documents)} corruptions injected={counts.corruptions} "
                f"(request flips={counts.request_flips}, response flips={counts.response_flips}) "
                f"drops={counts.drops} truncations={counts.truncations} delays={counts.delays} "
                f"connections={counts.connections} requests={counts.requests} "
                f"attempts={sum(ledger[t]['attempts'] for t in documents)} losses={losses} "
                f"corrupt copies accepted={corrupt} (seed {SEED}"
                + (f"; owed for a last transfer: {', '.join(owed)}" if owed else "") + ")")
        (link.root / "summary.txt").write_text(line + "\n")
        announce(request.config, line)

    assert losses == 0 and corrupt == 0
    for transfer in documents:
        detail = north.transfer(transfer)
        assert detail["receipt_verified"] and detail["bytes_sent"] == detail["size"]
    # Nothing but the transfers was stored: a damaged attempt never left a holding behind.
    assert len(south.holdings()) == len(documents)
    assert len({item["holding"] for item in south.inbox()}) == len(documents)
    # The proxy really struck, with every kind of fault.
    assert all(_struck(counts).values()), _struck(counts)


def _struck(counts: Counts) -> dict[str, int]:
    """How often the proxy struck with each kind of fault."""
    return {"drop": counts.drops, "delay": counts.delays, "truncate": counts.truncations,
            "flip_request": counts.request_flips, "flip_response": counts.response_flips}
