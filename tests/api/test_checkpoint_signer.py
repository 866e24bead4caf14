"""A running node keeps a recent signed checkpoint of every organisation's log, for partners."""

from __future__ import annotations

import time
from collections.abc import Callable

from civicshare.access import Role
from tests.api.conftest import NORTH, Server, Tokens


def test_serve_signs_checkpoints_as_the_log_grows(start_server: Callable[..., Server], tokens: Tokens) -> None:
    server = start_server(checkpoint_every=1)
    with server.client(tokens[NORTH, Role.RECORDS_MANAGER]) as c:
        deadline = time.monotonic() + 20
        sizes: list[int] = []
        while time.monotonic() < deadline and not sizes:
            sizes = [cp["tree_size"] for cp in c.get("/v1/audit/checkpoints").json()["checkpoints"]]
            time.sleep(0.2)
        assert sizes, "no checkpoint was signed"
        c.post("/v1/holdings/documents", params={"filename": "n.txt"}, content=b"note")
        deadline = time.monotonic() + 20
        grown = sizes
        while time.monotonic() < deadline and max(grown) <= max(sizes):
            grown = [cp["tree_size"] for cp in c.get("/v1/audit/checkpoints").json()["checkpoints"]]
            time.sleep(0.2)
        assert max(grown) > max(sizes), "the log grew but no newer checkpoint was signed"
