"""The share preview says exactly what a share would send, or refuses in the share's own words.

Each case previews, then shares for real: an allowed preview names the fields and rows the sealed
manifest then carries; a refused one carries the very message the share raises. A preview leaves
nothing behind (no ledger row, no payload). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from civicshare.access import Role
from civicshare.agreements.enforce import (
    RULE_ACTIVE,
    RULE_CLASSIFICATION,
    RULE_ITEMS,
    RULE_NEEDED,
    RULE_ONWARD,
    RULE_PARTIES,
    RULE_QUALITY,
)
from civicshare.errors import CivicshareError, NotFound, PermissionDenied, UsageError
from civicshare.exchange.preview import SharePreview
from civicshare.node import Node
from tests.agreements.enforce_support import (
    AGREED,
    EAST,
    clock,
    cnode,
    ctransport,
    deliver,
    letter,
    residents,
)
from tests.agreements.lifecycle_support import activate, draft
from tests.conftest import actor, write_csv
from tests.exchange.transfer_support import NORTH, SOUTH

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

# Faulty rows (a wrong NHS check digit, a birth in the future, a bad postcode) keep the score below 100.
FAULTY = ("first_name,last_name,date_of_birth,nhs_number,ni_number,postcode\n"
          "Zoë,Smith,1980-04-03,9434765919,AB123456C,NW1 4AB\n"
          "Bob,Jones,2130-01-01,943476591,AB123456A,not a postcode\n")


def _ledger(node: Node, org: str = NORTH) -> tuple[int, list[Path]]:
    folder = node.layout.outbox_dir(org)
    return len(node.transfers(actor(org))), sorted(folder.iterdir()) if folder.exists() else []


def _preview(node: Node, holding_id: str, to: str, agreement: str | None, org: str = NORTH) -> SharePreview:
    """The preview, checked to leave the ledger and the outbox as they were."""
    before = _ledger(node, org)
    preview = node.preview_share(actor(org), holding_id, to, agreement)
    assert _ledger(node, org) == before
    return preview


def _refused_alike(node: Node, holding_id: str, to: str, agreement: str | None, rule: str | None, words: str,
                   org: str = NORTH) -> SharePreview:
    """The preview refuses with ``rule`` and ``words``, and the share then refuses with the same message."""
    preview = _preview(node, holding_id, to, agreement, org)
    assert not preview.allowed and preview.refusal is not None
    assert preview.refusal.rule == rule and words in preview.refusal.message, preview.refusal
    with pytest.raises(CivicshareError) as caught:
        node.share(actor(org), holding_id, to, agreement=agreement)
    assert (caught.value.code, caught.value.message) == (preview.refusal.code, preview.refusal.message)
    if preview.kind == "dataset":
        assert preview.fields == () and set(preview.withheld) == set(preview.holding.columns or ())
    return preview


def test_an_allowed_dataset_preview_names_what_the_share_then_sends(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED)
    preview = _preview(cnode, holding.id, SOUTH, agreement.id)
    assert preview.allowed and preview.refusal is None
    assert preview.fields == ("surname", "postcode")
    assert preview.withheld == ("nhs_number", "date_of_birth")
    assert (preview.rows, preview.classification, preview.kind) == (3, "OFFICIAL", "dataset")
    assert (preview.agreement_id, preview.agreement_version) == (agreement.id, agreement.version)
    assert preview.partner_name == "South Fen Borough Council"
    assert preview.size == holding.size and not preview.size_exact
    assert preview.quality_score is not None and 0 <= preview.quality_score <= 100
    body = preview.to_json()
    assert body["allowed"] and body["fields"] == ["surname", "postcode"] and body["refusal"] is None
    # The share that follows seals exactly those fields and rows, under that agreement.
    transfer = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement.id)
    manifest = transfer.manifest
    assert tuple(manifest.holding.column_names) == preview.fields
    assert manifest.holding.rows == preview.rows
    assert manifest.holding.classification == preview.classification
    assert (manifest.agreement.id, manifest.agreement.version) == (agreement.id, agreement.version)
    assert manifest.holding.quality_score == pytest.approx(preview.quality_score)


def test_a_document_preview_is_the_whole_document_at_its_exact_size(
        cnode: Node, ctransport: httpx.BaseTransport) -> None:
    pdf = letter(cnode)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, media_types=["application/pdf"]).id
    preview = _preview(cnode, pdf.id, SOUTH, agreement)
    assert preview.allowed and preview.fields is None and preview.withheld == () and preview.rows is None
    assert preview.size == len(b"%PDF-1.7 a care plan") and preview.size_exact
    transfer = cnode.share(actor(NORTH), pdf.id, SOUTH, agreement=agreement)
    assert transfer.manifest.plaintext.size == preview.size
    # A document type the agreement does not allow is refused alike.
    other = cnode.import_document(actor(NORTH), io.BytesIO(b"plain words"), "note.txt", media_type="text/plain")
    _refused_alike(cnode, other.id, SOUTH, agreement, RULE_ITEMS, "documents of type text/plain are not allowed")


def test_refusals_read_as_the_share_refuses(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    _refused_alike(cnode, holding.id, SOUTH, None, RULE_NEEDED, "none was named")
    _refused_alike(cnode, holding.id, SOUTH, "  ", RULE_NEEDED, "none was named")
    unknown = _refused_alike(cnode, holding.id, SOUTH, "DSA-2026-0042", RULE_NEEDED, "DSA-2026-0042")
    assert (unknown.agreement_id, unknown.agreement_version) == ("DSA-2026-0042", None)
    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], dataset="Residents", fields=["surname"]),
                                    fmt="json")
    _refused_alike(cnode, holding.id, SOUTH, record.id, RULE_ACTIVE, "is a draft")
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    _refused_alike(cnode, holding.id, EAST, agreement, RULE_PARTIES, "east-marsh is not a recipient")
    tenants = residents(cnode, tmp_path, name="Tenants")
    _refused_alike(cnode, tenants.id, SOUTH, agreement, RULE_ITEMS, "covers the dataset 'Residents', not 'Tenants'")
    _refused_alike(cnode, letter(cnode).id, SOUTH, agreement, RULE_ITEMS, "not documents")
    sensitive = residents(cnode, tmp_path, name="Residents", classification="OFFICIAL-SENSITIVE")
    _refused_alike(cnode, sensitive.id, SOUTH, agreement, RULE_CLASSIFICATION, "this holding is OFFICIAL-SENSITIVE")
    # Revoked: the preview refuses at once, as the share does.
    cnode.revoke_agreement(actor(NORTH), agreement, "the purpose has ended")
    _refused_alike(cnode, holding.id, SOUTH, agreement, RULE_ACTIVE, "the purpose has ended")


def test_a_quality_score_below_the_agreements_minimum_is_refused(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    faulty = cnode.import_dataset(actor(NORTH), write_csv(tmp_path / "faulty.csv", FAULTY), "people",
                                  schema="person")
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="people", fields=["first_name", "postcode"],
                         minimum_quality=100).id
    preview = _refused_alike(cnode, faulty.id, SOUTH, agreement, RULE_QUALITY, "requires at least 100")
    assert preview.quality_score is not None and preview.quality_score < 100


def test_partner_and_holding_refusals(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    unknown = _refused_alike(cnode, holding.id, "west-vale", agreement, None, "No organisation called west-vale")
    assert unknown.refusal is not None and unknown.refusal.code == "unknown_sender" and unknown.partner_name is None
    cnode.shred(actor(NORTH), holding.id)
    shredded = _refused_alike(cnode, holding.id, SOUTH, agreement, None, "was shredded")
    assert shredded.refusal is not None and shredded.refusal.code == "shredded"


def test_an_onward_share_needs_the_received_holdings_agreement(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    first = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    cnode.share(actor(NORTH), holding.id, SOUTH, agreement=first)
    assert set(deliver(cnode, ctransport).values()) == {"delivered"}
    received = next(e for e in cnode.inbox(actor(SOUTH)) if e.holding_id is not None)
    assert received.holding_id is not None
    onward = activate(cnode, ctransport, SOUTH, [EAST], dataset="Residents", fields=AGREED).id
    _refused_alike(cnode, received.holding_id, EAST, onward, RULE_ONWARD, "onward sharing is not allowed",
                   org=SOUTH)


def test_a_callers_own_mistakes_raise(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    with pytest.raises(PermissionDenied, match="may not share holdings"):
        cnode.preview_share(actor(NORTH, Role.CASEWORKER), holding.id, SOUTH, agreement)
    with pytest.raises(UsageError, match="is this organisation"):
        cnode.preview_share(actor(NORTH), holding.id, NORTH, agreement)
    with pytest.raises(NotFound):
        cnode.preview_share(actor(NORTH), "h_doesnotexist", SOUTH, agreement)
    # Another organisation's holding is not found either.
    with pytest.raises(NotFound):
        cnode.preview_share(actor(SOUTH), holding.id, NORTH, agreement)
