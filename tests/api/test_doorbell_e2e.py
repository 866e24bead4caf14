"""Black-box: a share made on the command line is delivered at once by the node that serves the home,
not at the worker's next look for new transfers (here a minute away)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.nodes import agree, serving_pair

# The worker looks for new transfers only once a minute: only the doorbell can make it quick.
SERVE = ("--deliver-every", "60", "--retry-base", "0.2")


def test_a_share_from_the_command_line_is_delivered_at_once(tmp_path: Path, db_url: str | None) -> None:
    with serving_pair(tmp_path, db_url, *SERVE) as (north, south):
        (tmp_path / "letter.pdf").write_bytes(b"%PDF-1.4 minutes of the shared services board\n" * 100)
        document = north.import_document(tmp_path / "letter.pdf")["id"]
        agreement = agree(north, south, documents=True)
        started = time.monotonic()
        transfer = north.share(document, "south-fen", agreement=agreement)
        # Delivered within seconds; without the doorbell it would still be queued for up to a minute.
        answer = north.json("transfers", "show", transfer["id"])
        while answer["state"] != "delivered" and time.monotonic() - started < 30:
            time.sleep(0.2)
            answer = north.json("transfers", "show", transfer["id"])
        assert answer["state"] == "delivered", answer
        assert time.monotonic() - started < 30
        assert [entry["transfer"] for entry in south.inbox()] == [transfer["id"]]
