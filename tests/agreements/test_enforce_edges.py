"""Enforcement from the command line and the API: the same rules, one plain line or one JSON error."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from civicshare.access import Actor, Role
from civicshare.agreements.enforce import RULE_CLASSIFICATION, RULE_NEEDED
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.agreements.enforce_support import AGREED, RESIDENTS, clock, cnode, ctransport, entries, residents
from tests.agreements.lifecycle_support import activate
from tests.cli.conftest import Cli, cli
from tests.conftest import PASSPHRASE, actor
from tests.exchange.transfer_support import NORTH, SOUTH, URL

__all__ = ["cli", "clock", "cnode", "ctransport"]  # fixtures


def test_share_and_import_over_the_api(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    _user, token = cnode.add_user(NORTH, "robin", Role.RECORDS_MANAGER)
    api = TestClient(create_app(cnode), base_url=URL, headers={"Authorization": f"Bearer {token}"})
    made = api.post("/v1/holdings/datasets", params={"name": "Residents", "filename": "r.csv",
                                                     "classification": "OFFICIAL-SENSITIVE"},
                    content=RESIDENTS.encode())
    assert made.status_code == 201 and made.json()["classification"] == "OFFICIAL-SENSITIVE"
    holding = made.json()["id"]
    refused = api.post(f"/v1/holdings/{holding}/share", json={"to": SOUTH})
    assert refused.status_code == 403
    assert (refused.json()["error"]["code"], refused.json()["error"]["rule"]) == ("agreement_refused", RULE_NEEDED)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    too_high = api.post(f"/v1/holdings/{holding}/share", json={"to": SOUTH, "agreement": agreement})
    assert too_high.status_code == 403 and too_high.json()["error"]["rule"] == RULE_CLASSIFICATION
    plain = residents(cnode, tmp_path)
    shared = api.post(f"/v1/holdings/{plain.id}/share", json={"to": SOUTH, "agreement": agreement})
    assert shared.status_code == 201, shared.text
    assert (shared.json()["state"], shared.json()["agreement"]) == ("queued", agreement)
    # The agreement decides the fields: a request cannot ask for more.
    asked = api.post(f"/v1/holdings/{plain.id}/share", json={"to": SOUTH, "agreement": agreement,
                                                             "fields": ["nhs_number"]})
    assert asked.status_code == 400 and asked.json()["error"]["code"] == "usage"
    assert [e.outcome for e in entries(cnode, NORTH, "transfer.create")] == ["refused", "refused", "ok"]


def test_share_and_import_from_the_command_line(cli: Cli, db_url: str | None, tmp_path: Path) -> None:
    made = cli("init", "--org", NORTH, "--name", "North Wold District Council", "--url", URL,
               *(["--db", db_url] if db_url else []))
    assert made.code == 0, made.err
    assert cli("org", "add", "--org", SOUTH, "--name", "South Fen Borough Council", "--url", URL).code == 0
    source = tmp_path / "residents.csv"
    source.write_text(RESIDENTS, encoding="utf-8")
    imported = cli("import", str(source), "--dataset", "Residents", "--classification", "OFFICIAL-SENSITIVE",
                   "--org", NORTH, "--json")
    assert imported.code == 0, imported.err
    sensitive = imported.json()["id"]
    assert imported.json()["classification"] == "OFFICIAL-SENSITIVE"
    wrong = cli("import", str(source), "--dataset", "X", "--classification", "SECRET", "--org", NORTH)
    assert wrong.code == 2 and "Unknown classification 'SECRET'" in wrong.err
    listing = cli("holdings", "list", "--org", NORTH)
    assert "OFFICIAL-SENSITIVE" in listing.out

    # The two organisations pin each other and agree, through the node's own exchange.
    with Node.open(cli.home, passphrase=PASSPHRASE) as node:
        for org, partner in ((NORTH, SOUTH), (SOUTH, NORTH)):
            node.add_partner(Actor.operator(org), json.dumps(node.card(Actor.operator(partner))))
        transport = TestClient(create_app(node), base_url=URL)._transport
        agreement = activate(node, transport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
        plain = node.import_dataset(actor(NORTH), source, "Residents").id

    missing = cli("share", plain, "--to", SOUTH, "--org", NORTH)
    assert missing.code == 1
    assert missing.err.strip() == (f"civicshare: {RULE_NEEDED}: none was named; give the id of an active "
                                   "agreement with --agreement.")
    too_high = cli("share", sensitive, "--to", SOUTH, "--agreement", agreement, "--org", NORTH)
    assert too_high.code == 1 and f"agreement {agreement} allows OFFICIAL only" in too_high.err
    package = tmp_path / "pkg.tar"
    shared = cli("share", plain, "--to", SOUTH, "--agreement", agreement, "--out", str(package), "--org", NORTH,
                 "--json")
    assert shared.code == 0, shared.err
    shown = cli("transfers", "show", shared.json()["id"], "--org", NORTH)
    assert f"{agreement} version 1" in shown.out and "surname, postcode" in shown.out
    assert "OFFICIAL" in shown.out
