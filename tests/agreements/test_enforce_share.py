"""Sharing under an agreement, at the provider: every refusal, minimisation, and delivery that stops.

Each refusal is AgreementRefused with the rule and the reason, is logged (transfer.create, refused,
code agreement_refused) and leaves nothing behind: no ledger row, no sealed payload.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import pyrage
import pytest

from civicshare.access import Role
from civicshare.agreements.enforce import (
    RULE_ACTIVE,
    RULE_CLASSIFICATION,
    RULE_ITEMS,
    RULE_NEEDED,
    RULE_PARTIES,
)
from civicshare.errors import AgreementRefused
from civicshare.memfile import memory_file
from civicshare.node import Node
from tests.agreements.enforce_support import (
    AGREED,
    EAST,
    WITHHELD,
    clock,
    cnode,
    ctransport,
    deliver,
    entries,
    letter,
    residents,
)
from tests.agreements.lifecycle_support import activate, draft, send_notices
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

TODAY = date(2026, 4, 1)


def _refused(node: Node, holding_id: str, to: str, agreement: str | None, rule: str, words: str) -> None:
    """The share is refused for ``rule`` with ``words`` in the reason, logged, and leaves nothing."""
    before = len(node.transfers(actor(NORTH)))
    folder = node.layout.outbox_dir(NORTH)
    files = sorted(folder.iterdir()) if folder.exists() else []
    with pytest.raises(AgreementRefused) as caught:
        node.share(actor(NORTH), holding_id, to, agreement=agreement)
    assert caught.value.rule == rule and words in caught.value.reason, caught.value.message
    assert caught.value.message == f"{rule}: {caught.value.reason.rstrip('.')}."
    logged = entries(node, NORTH, "transfer.create")[-1]
    assert (logged.outcome, logged.details["code"], logged.details["reason"]) == (
        "refused", "agreement_refused", caught.value.message)
    assert len(node.transfers(actor(NORTH))) == before
    assert (sorted(folder.iterdir()) if folder.exists() else []) == files


def _residents_agreement(node: Node, transport: httpx.BaseTransport, **options: object) -> str:
    return activate(node, transport, NORTH, [SOUTH], dataset="Residents", fields=AGREED, **options).id  # type: ignore[arg-type]


def test_a_share_needs_an_agreement_that_exists(cnode: Node, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    _refused(cnode, holding.id, SOUTH, None, RULE_NEEDED, "none was named")
    _refused(cnode, holding.id, SOUTH, "DSA-2026-0042", RULE_NEEDED, "DSA-2026-0042")


def test_a_draft_or_proposed_agreement_is_not_in_force(cnode: Node, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    manager = actor(NORTH)
    text = draft(cnode, NORTH, [SOUTH], dataset="Residents", fields=AGREED)
    record = cnode.create_agreement(manager, text, fmt="json")
    _refused(cnode, holding.id, SOUTH, record.id, RULE_ACTIVE, f"agreement {record.id} is a draft")
    cnode.propose_agreement(manager, record.id)
    _refused(cnode, holding.id, SOUTH, record.id, RULE_ACTIVE, "is not signed by every party yet (waiting for")
    # Signed by north-wold's DPO only: still waiting for south-fen.
    cnode.sign_agreement(actor(NORTH, Role.DPO), record.id)
    _refused(cnode, holding.id, SOUTH, record.id, RULE_ACTIVE, "waiting for south-fen")


def test_an_agreement_not_yet_started_expired_or_revoked_is_refused(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    later = _residents_agreement(cnode, ctransport, start=TODAY + timedelta(days=10), end=TODAY + timedelta(days=20))
    _refused(cnode, holding.id, SOUTH, later, RULE_ACTIVE, f"agreement {later} starts on 2026-04-11")
    # Ten days on it is in force, and until the end of its last day.
    clock.advance(days=10)
    assert cnode.share(actor(NORTH), holding.id, SOUTH, agreement=later).state == "queued"
    clock.now = clock.now.replace(day=21, hour=23, minute=59)
    assert cnode.share(actor(NORTH), holding.id, SOUTH, agreement=later).state == "queued"
    clock.advance(minutes=1)
    _refused(cnode, holding.id, SOUTH, later, RULE_ACTIVE, f"agreement {later} ended on 2026-04-21")


def test_a_revoked_agreement_is_refused(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = _residents_agreement(cnode, ctransport)
    # South-fen revokes it; once its notice arrives, north-wold can no longer share under it.
    cnode.revoke_agreement(actor(SOUTH), agreement, "the purpose has ended")
    assert cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement).state == "queued"  # not told yet
    send_notices(cnode, ctransport)
    _refused(cnode, holding.id, SOUTH, agreement, RULE_ACTIVE,
             f"agreement {agreement} was revoked by south-fen on 2026-04-01: the purpose has ended")


def test_the_recipient_must_be_named_and_the_sender_the_provider(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = _residents_agreement(cnode, ctransport)
    _refused(cnode, holding.id, EAST, agreement, RULE_PARTIES,
             f"east-marsh is not a recipient under agreement {agreement}")
    # South-fen holds the same agreement, but as a recipient it cannot share under it.
    theirs = residents(cnode, tmp_path, org=SOUTH)
    with pytest.raises(AgreementRefused, match="south-fen is not the provider"):
        cnode.share(actor(SOUTH), theirs.id, NORTH, agreement=agreement)
    assert entries(cnode, SOUTH, "transfer.create")[-1].details["code"] == "agreement_refused"


def test_the_agreement_must_cover_the_holding(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement = _residents_agreement(cnode, ctransport)
    tenants = residents(cnode, tmp_path, name="Tenants")
    _refused(cnode, tenants.id, SOUTH, agreement, RULE_ITEMS,
             f"agreement {agreement} covers the dataset 'Residents', not 'Tenants'")
    _refused(cnode, letter(cnode).id, SOUTH, agreement, RULE_ITEMS, "not documents")
    # The dataset's name is matched whatever its case.
    same = residents(cnode, tmp_path, name="RESIDENTS")
    assert cnode.share(actor(NORTH), same.id, SOUTH, agreement=agreement).state == "queued"


def test_documents_only_of_allowed_media_types(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    pdfs = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, media_types=["application/pdf"]).id
    word = letter(cnode, media_type="application/msword")
    _refused(cnode, word.id, SOUTH, pdfs, RULE_ITEMS,
             f"documents of type application/msword are not allowed under agreement {pdfs} "
             "(allowed: application/pdf)")
    _refused(cnode, residents(cnode, tmp_path).id, SOUTH, pdfs, RULE_ITEMS, "covers documents, not datasets")
    assert cnode.share(actor(NORTH), letter(cnode).id, SOUTH, agreement=pdfs).state == "queued"


def test_classification_must_not_exceed_the_agreement(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    official = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, media_types=["application/pdf"]).id
    sensitive_letter = letter(cnode, classification="OFFICIAL-SENSITIVE")
    _refused(cnode, sensitive_letter.id, SOUTH, official, RULE_CLASSIFICATION,
             f"this holding is OFFICIAL-SENSITIVE; agreement {official} allows OFFICIAL only")
    sensitive = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, media_types=["application/pdf"],
                         classification="OFFICIAL-SENSITIVE").id
    transfer = cnode.share(actor(NORTH), sensitive_letter.id, SOUTH, agreement=sensitive)
    assert transfer.manifest.holding.classification == "OFFICIAL-SENSITIVE"
    assert cnode.share(actor(NORTH), letter(cnode).id, SOUTH, agreement=sensitive).state == "queued"


def _identity(node: Node, tmp_path: Path, org: str) -> pyrage.x25519.Identity:
    path = tmp_path / f"{org}.age-identity"
    node.export_age_identity(actor(org, Role.ADMIN), path)
    return pyrage.x25519.Identity.from_str(path.read_text().strip().splitlines()[-1])


def _parquet(data: bytes) -> tuple[list[str], list[tuple[str, ...]]]:
    with memory_file("test-parquet", data) as (_fd, path):
        result = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)])
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()


def test_minimisation_before_sealing(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)  # nhs_number, surname, postcode, date_of_birth
    agreement = _residents_agreement(cnode, ctransport)  # surname and postcode only
    transfer = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement)
    manifest = transfer.manifest
    assert manifest.holding.column_names == AGREED and manifest.holding.rows == 3
    created = entries(cnode, NORTH, "transfer.create")[-1]
    assert created.outcome == "ok" and created.details["fields"] == AGREED

    # The sealed payload, opened with south-fen's own identity: only the agreed fields and their values.
    sealed = (cnode.layout.home / (transfer.payload or "")).read_bytes()
    plaintext = pyrage.decrypt(sealed, [_identity(cnode, tmp_path, SOUTH)])
    columns, rows = _parquet(plaintext)
    assert columns == AGREED
    assert rows == [("Abbott", "NW1 1AA"), ("Brown", "NW2 2BB"), ("Čapek", "NW3 3CC")]
    for value in WITHHELD:
        assert value.encode() not in plaintext

    # The recipient's copy holds the same, and nothing else.
    assert deliver(cnode, ctransport) == {transfer.id: "delivered"}
    [arrived] = cnode.inbox(actor(SOUTH))
    received = cnode.holding(actor(SOUTH), arrived.holding_id or "")
    assert received.columns == AGREED
    out = tmp_path / "received.csv"
    cnode.export(actor(SOUTH), received.id, out)
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "surname,postcode"
    for value in WITHHELD:
        assert value not in text
    # The provider's own holding still has everything.
    assert cnode.holding(actor(NORTH), holding.id).columns == ["nhs_number", "surname", "postcode", "date_of_birth"]


def test_an_offline_package_is_minimised_too(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    agreement = _residents_agreement(cnode, ctransport)
    package = tmp_path / "for-south-fen.tar"
    transfer = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement, out=package)
    assert transfer.manifest.holding.column_names == AGREED
    result = cnode.receive(actor(SOUTH), package)
    out = tmp_path / "received.jsonl"
    cnode.export(actor(SOUTH), result["holding"], out)
    text = out.read_text(encoding="utf-8")
    assert '"surname":"Abbott"' in text.replace(" ", "")
    for value in WITHHELD:
        assert value not in text


def test_none_of_the_holdings_fields_agreed_is_refused(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement = _residents_agreement(cnode, ctransport)
    other = tmp_path / "other.csv"
    other.write_text("nhs_number,date_of_birth\n9434765919,1961-02-03\n", encoding="utf-8")
    holding = cnode.import_dataset(actor(NORTH), other, "Residents")
    _refused(cnode, holding.id, SOUTH, agreement, RULE_ITEMS,
             f"none of the fields of 'Residents' is in the agreed data items of agreement {agreement}")


def test_delivery_stops_when_the_agreement_ends_during_the_transfer(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    agreement = _residents_agreement(cnode, ctransport, end=TODAY + timedelta(days=2))
    transfer = cnode.share(actor(NORTH), residents(cnode, tmp_path).id, SOUTH, agreement=agreement)
    payload = cnode.layout.home / (transfer.payload or "")
    assert payload.exists()
    clock.advance(days=3)  # the recipient was unreachable until after the agreement ended
    assert deliver(cnode, ctransport) == {transfer.id: "failed"}
    failed = cnode.transfer(actor(NORTH), transfer.id)
    assert failed.state == "failed"
    assert failed.failed_reason == f"{RULE_ACTIVE}: agreement {agreement} ended on 2026-04-03."
    assert not payload.exists()
    send = entries(cnode, NORTH, "transfer.send")[-1]
    assert (send.outcome, send.details["code"], send.details["outcome"]) == ("failed", "agreement_refused", "failed")
    assert entries(cnode, NORTH, "transfer.failed")[-1].details["reason"] == failed.failed_reason
    assert cnode.inbox(actor(SOUTH)) == []  # nothing was sent
    assert deliver(cnode, ctransport) == {}  # for good


def test_delivery_stops_when_the_agreement_is_revoked_before_it_is_sent(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement = _residents_agreement(cnode, ctransport)
    transfer = cnode.share(actor(NORTH), residents(cnode, tmp_path).id, SOUTH, agreement=agreement)
    cnode.revoke_agreement(actor(NORTH), agreement, "shared in error")
    assert deliver(cnode, ctransport) == {transfer.id: "failed"}
    reason = cnode.transfer(actor(NORTH), transfer.id).failed_reason or ""
    assert f"agreement {agreement} was revoked by north-wold on 2026-04-01: shared in error" in reason


def test_delivery_stops_when_a_new_version_supersedes_the_agreement(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement = _residents_agreement(cnode, ctransport)
    transfer = cnode.share(actor(NORTH), residents(cnode, tmp_path).id, SOUTH, agreement=agreement)
    # Version 2 shares the surnames only; once every party signed it, version 1 stops.
    body = json.loads(draft(cnode, NORTH, [SOUTH], dataset="Residents", fields=["surname"]))
    body["id"] = agreement
    cnode.create_agreement(actor(NORTH), json.dumps(body), fmt="json")
    cnode.propose_agreement(actor(NORTH), agreement, 2)
    send_notices(cnode, ctransport)
    for party in (NORTH, SOUTH):
        cnode.sign_agreement(actor(party, Role.DPO), agreement, 2)
        send_notices(cnode, ctransport)
    assert deliver(cnode, ctransport) == {transfer.id: "failed"}
    reason = cnode.transfer(actor(NORTH), transfer.id).failed_reason or ""
    assert f"agreement {agreement} version 1 was superseded by version 2" in reason
    # A new share under the same id goes under version 2, minimised to its fields.
    again = cnode.share(actor(NORTH), residents(cnode, tmp_path, name="residents").id, SOUTH, agreement=agreement)
    assert (again.manifest.agreement.version, again.manifest.holding.column_names) == (2, ["surname"])
