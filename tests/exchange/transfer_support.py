"""Fixtures for transfer tests: one node hosting two partners that pin each other, and its API in-process.

The node has a public URL, so each organisation's card carries an endpoint; the delivery worker's
requests go through the real application (Starlette's test transport), gate and inbox included.
Every share runs under an agreement made active with ``agree`` (drafted, proposed and signed by both
organisations' data protection officers over that same application).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from civicshare.holdings.store import Holding
from civicshare.node import Node
from tests.agreements.lifecycle_support import activate
from tests.conftest import actor, write_csv
from tests.support.partner_node import EAST, NORTH, SOUTH, URL, app_transport, partner_node, pin

# Re-exported: the transfer tests take the organisations and the URL from here.
__all__ = ["EAST", "NORTH", "SOUTH", "URL", "pin"]

DOCUMENT = bytes(range(256)) * 23 + b"the end\n"  # 5,896 bytes: several parts of 1 KiB
CSV = "surname,postcode\nAbbott,NW1 1AA\nBrown,NW2 2BB\nČapek,NW3 3CC\n"
DOCUMENT_TYPE = "application/octet-stream"


@pytest.fixture
def xnode(tmp_path: Path, db_url: str | None) -> Iterator[Node]:
    """A node at URL hosting north-wold and south-fen, each pinning the other."""
    n = partner_node(tmp_path / "home", db_url)
    yield n
    n.close()


@pytest.fixture
def transport(xnode: Node) -> httpx.BaseTransport:
    """The node's own API as the partner client's transport."""
    return app_transport(xnode)


def agree(node: Node, transport: httpx.BaseTransport, *, dataset: str | None = None,
          fields: Sequence[str] | None = None, media_types: Sequence[str] | None = None, provider: str = NORTH,
          recipients: Sequence[str] = (SOUTH,), **options: object) -> str:
    """The id of an agreement from north-wold to south-fen, active now: for ``dataset`` (Residents, both
    columns unless ``fields`` say), or else for documents of the type ``document`` imports."""
    if dataset is not None:
        record = activate(node, transport, provider, list(recipients), dataset=dataset,
                          fields=list(fields or ("surname", "postcode")), **options)  # type: ignore[arg-type]
    else:
        record = activate(node, transport, provider, list(recipients), documents=True,
                          media_types=list(media_types or [DOCUMENT_TYPE]), **options)  # type: ignore[arg-type]
    return record.id


@pytest.fixture
def agreement(xnode: Node, transport: httpx.BaseTransport) -> str:
    """An active agreement for north-wold to share documents (those ``document`` makes) with south-fen."""
    return agree(xnode, transport)


def document(node: Node, data: bytes = DOCUMENT) -> Holding:
    return node.import_document(actor(NORTH), io.BytesIO(data), "letter.bin", media_type=DOCUMENT_TYPE)


def dataset(node: Node, tmp_path: Path) -> Holding:
    return node.import_dataset(actor(NORTH), write_csv(tmp_path / "residents.csv", CSV), "Residents")


def entries(node: Node, org: str, action: str) -> list[Any]:
    return [e for e in node.audit.entries(org) if e.action == action]


def outbox_files(node: Node, org: str = NORTH) -> list[Path]:
    folder = node.layout.outbox_dir(org)
    return sorted(folder.iterdir()) if folder.exists() else []
