"""Black-box: two real nodes on loopback share a dataset and a document over the network, under agreements.

Node A hosts north-wold (on each backend in turn), node B hosts south-fen (SQLite). Each home is
created with its own --url, so its card names the endpoint its `civicshare serve` listens on; the
councils pin each other's cards and sign two data sharing agreements through the CLI (``agree``):
two fields of the dataset, and PDF documents. Shares outside them are refused with the reason; the
shares under them run with `civicshare share --wait` while both servers deliver, and the dataset
arrives with the agreed fields only. Revoking an agreement stops the next share under it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicshare.access import Actor
from civicshare.node import Node
from tests.support.nodes import PASSPHRASE, NodeHome, agree, serving_pair

SERVE = ("--deliver-every", "0.2", "--retry-base", "0.2")
CSV = "surname,first_name,postcode\nAbbott,Ann,NW1 1AA\nBrown,Bo,NW2 2BB\nČapek,Karel,NW3 3CC\n"
AGREED = ["surname", "postcode"]
DOCUMENT = b"%PDF-1.4 not really a pdf\n" + bytes(range(256)) * 64


@pytest.fixture
def pair(tmp_path: Path, db_url: str | None) -> Iterator[tuple[NodeHome, NodeHome]]:
    with serving_pair(tmp_path, db_url, *SERVE) as nodes:
        yield nodes


def _refused(node: NodeHome, *args: str) -> str:
    """A command that must be refused (exit 1, one plain line); returns that line."""
    result = node.run(*args, check=False)
    assert result.code == 1, (result.code, result.out, result.err)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    return result.err


def test_two_nodes_share_a_dataset_and_a_document(pair: tuple[NodeHome, NodeHome], tmp_path: Path) -> None:
    a, b = pair
    (tmp_path / "residents.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "letter.pdf").write_bytes(DOCUMENT)
    dataset_id = a.import_dataset(tmp_path / "residents.csv", "Residents")["id"]
    document_id = a.import_document(tmp_path / "letter.pdf")["id"]

    # No agreement, no share.
    assert "needs a data sharing agreement" in _refused(a, "share", document_id, "--to", "south-fen")
    rows_dsa = agree(a, b, dataset="Residents", fields=AGREED)
    docs_dsa = agree(a, b, documents=True)  # the template's media types: application/pdf
    # Outside what each agreement covers: refused with the reason, nothing queued.
    assert f"{rows_dsa} covers the dataset" in _refused(
        a, "share", document_id, "--to", "south-fen", "--agreement", rows_dsa)
    assert f"{docs_dsa} covers documents" in _refused(
        a, "share", dataset_id, "--to", "south-fen", "--agreement", docs_dsa)
    assert "DSA-2000-0001" in _refused(a, "share", dataset_id, "--to", "south-fen", "--agreement", "DSA-2000-0001")
    assert a.transfers() == []

    sent = {}
    for holding, agreement in ((dataset_id, rows_dsa), (document_id, docs_dsa)):
        shared = a.run("share", holding, "--to", "south-fen", "--agreement", agreement, "--wait", "--timeout", "60",
                       "--json", check=False)
        assert shared.code == 0, shared.err + a.log_tail()
        ledger = shared.json()
        assert ledger["state"] == "delivered" and ledger["bytes_sent"] == ledger["size"], ledger
        assert ledger["agreement"] == agreement
        assert "delivered" in shared.err  # the progress lines
        sent[holding] = ledger["id"]

    detail = a.transfer(sent[document_id])
    assert detail["state"] == "delivered" and detail["receipt_verified"] is True
    assert detail["receipt"]["body"]["transfer"] == sent[document_id]
    assert detail["manifest"]["holding"]["kind"] == "document"
    assert detail["manifest"]["agreement"]["id"] == docs_dsa
    text = a.run("transfers", "show", sent[document_id]).out
    assert "verified: signed by south-fen" in text
    # Minimisation before sealing: the manifest describes the agreed columns only.
    rows_manifest = a.transfer(sent[dataset_id])["manifest"]
    assert [c["name"] for c in rows_manifest["holding"]["columns"]] == AGREED
    assert rows_manifest["agreement"]["id"] == rows_dsa

    arrived = {i["transfer"]: i for i in b.inbox()}
    assert set(arrived) == set(sent.values())
    assert all(i["state"] == "delivered" and i["sender"] == "north-wold" for i in arrived.values())
    assert arrived[sent[dataset_id]]["rows"] == 3

    theirs_doc = arrived[sent[document_id]]["holding"]
    theirs_rows = arrived[sent[dataset_id]]["holding"]
    assert b.export(theirs_doc, tmp_path / "copy.pdf").read_bytes() == DOCUMENT
    copy = b.export(theirs_rows, tmp_path / "copy.csv").read_text(encoding="utf-8")
    ours = list(csv.DictReader(io.StringIO(CSV)))
    assert list(csv.DictReader(io.StringIO(copy))) == [{k: r[k] for k in AGREED} for r in ours]
    assert not any(r["first_name"] in copy for r in ours)  # the withheld field's values never left

    # A second share of the same holding is a second transfer, and a second holding at B.
    again = a.share(document_id, "south-fen", agreement=docs_dsa, wait=True, timeout=60)
    assert again["state"] == "delivered" and again["id"] not in sent.values()

    # Repeating a delivered transfer's manifest and commit stores nothing new.
    node = Node.open(a.home, passphrase=PASSPHRASE)
    try:
        transfer = node.transfer(Actor.operator("north-wold"), sent[document_id])
        with node.partner_client(timeout=30) as client:
            put = client.request("north-wold", "south-fen", "PUT", f"/transfers/{transfer.id}",
                                 content=transfer.manifest_text.encode(), content_type="application/json")
            assert put.status_code == 200 and put.json()["state"] == "delivered", put.text
            commit = client.request("north-wold", "south-fen", "POST", f"/transfers/{transfer.id}/commit")
            assert commit.status_code == 200, commit.text
            assert commit.json()["receipt"] == transfer.receipt
    finally:
        node.close()
    assert len(b.holdings()) == 3
    assert [t["state"] for t in a.transfers()] == ["delivered"] * 3

    # Once revoked, the agreement lets nothing more move.
    a.json("agreement", "revoke", docs_dsa, "--reason", "the joint committee has been wound up")
    assert f"{docs_dsa} was revoked by north-wold" in _refused(
        a, "share", document_id, "--to", "south-fen", "--agreement", docs_dsa)
    assert len(a.transfers()) == 3
