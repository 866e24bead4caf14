"""``/v1/transfers`` and ``/v1/inbox``: the ledger and the inbox over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from starlette.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.api.conftest import assert_error, auth
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, URL, agree, document, transport, xnode

__all__ = ["transport", "xnode"]  # the fixtures this module uses


def test_the_ledger_and_the_inbox_follow_a_transfer(xnode: Node, transport: httpx.BaseTransport) -> None:
    manager = xnode.add_user(NORTH, "north manager", Role.RECORDS_MANAGER)[1]
    caseworker = xnode.add_user(NORTH, "north caseworker", Role.CASEWORKER)[1]
    south = xnode.add_user(SOUTH, "south manager", Role.RECORDS_MANAGER)[1]
    agreement = agree(xnode, transport)
    sent = xnode.share(actor(NORTH), document(xnode).id, SOUTH, agreement=agreement)
    client = TestClient(create_app(xnode), base_url=URL, raise_server_exceptions=False)

    queued = client.get("/v1/transfers", headers=auth(manager))
    assert queued.status_code == 200, queued.text
    [entry] = queued.json()["transfers"]
    assert (entry["id"], entry["state"], entry["recipient"], entry["agreement"]) == (sent.id, "queued", SOUTH,
                                                                                      agreement)
    assert client.get("/v1/inbox", headers=auth(south)).json() == {"inbox": []}

    assert xnode.exchange.worker(transport=transport).run_once() == {sent.id: "delivered"}
    shown = client.get(f"/v1/transfers/{sent.id}", headers=auth(manager)).json()
    assert (shown["state"], shown["receipt_verified"]) == ("delivered", True)
    assert shown["receipt"]["body"]["transfer"] == sent.id
    assert shown["deletion"]["state"] == "due"  # the agreement keeps it for a while, then it must go
    [arrived] = client.get("/v1/inbox", headers=auth(south)).json()["inbox"]
    assert (arrived["transfer"], arrived["sender"], arrived["state"]) == (sent.id, NORTH, "delivered")
    assert arrived["holding"]

    # A caseworker does not read the ledger; another organisation never sees this one's transfers.
    assert_error(client.get("/v1/transfers", headers=auth(caseworker)), 403, "forbidden")
    assert_error(client.get(f"/v1/transfers/{sent.id}", headers=auth(south)), 404, "not_found")
    assert_error(client.get("/v1/transfers/t-unknown", headers=auth(manager)), 404, "not_found")
    assert_error(client.get("/v1/inbox"), 401, "unauthenticated")
