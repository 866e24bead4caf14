"""Sealing a holding at north-wold and opening it at south-fen, for the payload tests."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from civicshare.db import tables as t
from civicshare.exchange.manifest import AgreementRef, Manifest
from civicshare.exchange.payload import SealedPayload, open_payload, seal_holding
from civicshare.node import Node
from tests.conftest import actor, write_csv

NORTH, SOUTH = "north-wold", "south-fen"
AGE = "/usr/bin/age"
AGREEMENT = AgreementRef("DSA-2026-0001", 1, "e" * 64)
CSV = "nhs_number,surname,postcode\n0123456789,O'Brien,NW1 1AA\n0987654321,=SUM(A1),\n,Smith,SF2 2BB\n"


def make_dataset(node: Node, tmp_path: Path, text: str = CSV) -> str:
    source = write_csv(tmp_path / "residents.csv", text)
    return node.import_dataset(actor(NORTH), source, "Residents").id


def make_document(node: Node, data: bytes) -> str:
    return node.import_document(actor(NORTH), io.BytesIO(data), "letter.pdf").id


def seal_for_south(node: Node, holding_id: str, dest: Path, to: str = SOUTH,
          **options: object) -> tuple[SealedPayload, Manifest]:
    _key, recipient = node.keys.age_recipient(to)
    sealed = seal_holding(node, actor(NORTH), holding_id, recipient, dest, **options)  # type: ignore[arg-type]
    manifest = sealed.manifest(transfer="t_abcdefghijklmnop", sender=NORTH, recipient=SOUTH,
                               created=datetime(2026, 11, 22, 10, tzinfo=UTC), age_recipient=recipient,
                               agreement=AGREEMENT)
    return sealed, manifest


def open_at_south(node: Node, path: Path, manifest: Manifest) -> object:
    with open(path, "rb") as fh:
        return open_payload(node, SOUTH, fh, manifest, actor_name="receiver")


def left_behind(node: Node) -> tuple[list[str], list[str], list[str]]:
    """Every file under the blobs and work folders, the key register and the holdings: to show nothing
    was left behind."""
    files = sorted(str(p.relative_to(node.layout.home)) for d in (node.layout.blobs_dir, node.layout.work_dir)
                   for p in d.rglob("*") if not p.is_dir())
    with node.db.engine.connect() as conn:
        keys = sorted(r.id for r in conn.execute(select(t.keys.c.id)))
        holdings = sorted(r.id for r in conn.execute(select(t.holdings.c.id)))
    return files, keys, holdings
