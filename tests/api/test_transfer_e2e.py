"""Black-box: two real nodes on loopback share a dataset and a document over the network.

Node A hosts north-wold (on each backend in turn), node B hosts south-fen (SQLite). Each home is
created with its own --url, so its card names the endpoint its `civicshare serve` listens on; the
councils pin each other's cards, then `civicshare share --wait` runs while both servers deliver.
"""

from __future__ import annotations

from pathlib import Path

from civicshare.node import Node
from tests.api.conftest import Server, free_port, start_home
from tests.cli.conftest import Cli
from tests.conftest import PASSPHRASE

CSV = "surname,first_name,postcode\nAbbott,Ann,NW1 1AA\nBrown,Bo,NW2 2BB\nČapek,Karel,NW3 3CC\n"
DOCUMENT = b"%PDF-1.4 not really a pdf\n" + bytes(range(256)) * 64


def _home(tmp_path: Path, name: str, org: str, port: int, db_url: str | None = None) -> Cli:
    cli = Cli(tmp_path / name, tmp_path / f"{name}-tmp")
    args = ["init", "--org", org, "--name", f"{org} council", "--url", f"http://127.0.0.1:{port}"]
    result = cli(*args, *(["--db", db_url] if db_url else []))
    assert result.code == 0, result.err
    return cli


def _serve(cli: Cli, port: int, tmpdir: Path) -> Server:
    return start_home(cli.home, tmpdir, port, "--deliver-every", "0.2", "--retry-base", "0.2")


def test_two_nodes_share_a_dataset_and_a_document(tmp_path: Path, db_url: str | None) -> None:
    port_a, port_b = free_port(), free_port()
    a = _home(tmp_path, "a", "north-wold", port_a, db_url)
    b = _home(tmp_path, "b", "south-fen", port_b)
    for giver, taker, name in ((a, b, "a.card"), (b, a, "b.card")):
        assert giver("card", "--out", str(tmp_path / name)).code == 0
        added = taker("partner", "add", str(tmp_path / name))
        assert added.code == 0, added.err
    (tmp_path / "residents.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "letter.pdf").write_bytes(DOCUMENT)
    rows = a("import", str(tmp_path / "residents.csv"), "--dataset", "Residents", "--json")
    doc = a("import", str(tmp_path / "letter.pdf"), "--document", "--json")
    assert rows.code == doc.code == 0, (rows.err, doc.err)
    dataset_id, document_id = rows.json()["id"], doc.json()["id"]

    servers = [_serve(a, port_a, tmp_path / "server-a-tmp"), _serve(b, port_b, tmp_path / "server-b-tmp")]
    try:
        sent = {}
        for holding in (dataset_id, document_id):
            shared = a("share", holding, "--to", "south-fen", "--wait", "--timeout", "60", "--json")
            assert shared.code == 0, shared.err + servers[0].log.read_text(errors="replace")
            ledger = shared.json()
            assert ledger["state"] == "delivered" and ledger["bytes_sent"] == ledger["size"], ledger
            assert "delivered" in shared.err  # the progress lines
            sent[holding] = ledger["id"]

        shown = a("transfers", "show", sent[document_id], "--json")
        assert shown.code == 0, shown.err
        detail = shown.json()
        assert detail["state"] == "delivered" and detail["receipt_verified"] is True
        assert detail["receipt"]["body"]["transfer"] == sent[document_id]
        assert detail["manifest"]["holding"]["kind"] == "document"
        text = a("transfers", "show", sent[document_id])
        assert "verified: signed by south-fen" in text.out

        inbox = b("inbox", "--json")
        assert inbox.code == 0, inbox.err
        arrived = {i["transfer"]: i for i in inbox.json()}
        assert set(arrived) == set(sent.values())
        assert all(i["state"] == "delivered" and i["sender"] == "north-wold" for i in arrived.values())
        assert arrived[sent[dataset_id]]["rows"] == 3

        theirs_doc = arrived[sent[document_id]]["holding"]
        theirs_rows = arrived[sent[dataset_id]]["holding"]
        assert b("export", theirs_doc, "--out", str(tmp_path / "copy.pdf")).code == 0
        assert (tmp_path / "copy.pdf").read_bytes() == DOCUMENT
        assert b("export", theirs_rows, "--out", str(tmp_path / "copy.csv")).code == 0
        assert a("export", dataset_id, "--out", str(tmp_path / "ours.csv")).code == 0
        assert (tmp_path / "copy.csv").read_text(encoding="utf-8") == (tmp_path / "ours.csv").read_text(
            encoding="utf-8")

        # A second share of the same holding is a second transfer, and a second holding at B.
        again = a("share", document_id, "--to", "south-fen", "--wait", "--timeout", "60", "--json")
        assert again.code == 0, again.err
        assert again.json()["id"] not in sent.values()

        # Repeating a delivered transfer's manifest and commit stores nothing new.
        node = Node.open(a.home, passphrase=PASSPHRASE)
        try:
            from civicshare.access import Actor

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
        held = b("holdings", "list", "--json")
        assert held.code == 0 and len(held.json()) == 3

        listed = a("transfers", "list", "--json")
        assert [t["state"] for t in listed.json()] == ["delivered"] * 3
    finally:
        for server in servers:
            server.stop()
