"""Retention and deletion: received holdings are crypto-shredded when retention ends or the agreement
stops, with nobody acting; the provider verifies the signed certificate; overdue ones are flagged.

One node hosts both councils on a clock the test moves; certificates travel through the node's own API.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from civicshare.access import Role
from civicshare.errors import AgreementRefused, Shredded
from civicshare.exchange.deletion import peek_certificate
from civicshare.node import Node
from tests.agreements.lifecycle_support import clock, cnode, ctransport, draft
from tests.agreements.retention_support import (
    certificates,
    inbound,
    ledger,
    send_notices,
    share_delivered,
    shredded,
    system,
)
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, entries

__all__ = ["clock", "cnode", "ctransport"]


def test_retention_ends_the_holding_is_shredded_and_the_provider_verifies(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    record, sent = share_delivered(cnode, ctransport, tmp_path, days_after_receipt=30)
    arrived = inbound(cnode, sent.id)
    assert sent.delivered_at is not None and arrived.completed_at is not None
    assert sent.deletion_due_at == sent.delivered_at + timedelta(days=30)
    assert arrived.retain_until == arrived.completed_at + timedelta(days=30)
    due_day = (sent.delivered_at + timedelta(days=30)).date().isoformat()
    assert sent.to_json(now=clock())["deletion"] == {
        "state": "due", "due": sent.to_json()["deletion"]["due"], "certificate": None, "verified_at": None,
        "words": f"due on {due_day}"}
    assert arrived.to_json()["deletion"]["words"] == f"kept until {due_day}"

    clock.advance(days=29, hours=23)
    assert cnode.retention.sweep().deleted == []
    assert not shredded(cnode, arrived.holding_id)

    clock.advance(hours=1, minutes=1)
    report = cnode.retention.sweep()
    assert report.deleted == [sent.id] and report.faults == []
    assert shredded(cnode, arrived.holding_id)
    with pytest.raises(Shredded):
        cnode.export(system(SOUTH), arrived.holding_id, tmp_path / "out.csv")
    gone = inbound(cnode, sent.id)
    assert gone.deleted_at is not None and gone.deletion_reason is not None
    assert gone.deletion_reason.startswith("retention ended: kept until ")
    assert gone.to_json()["deletion"]["state"] == "deleted"
    assert gone.to_json()["deletion"]["words"] == f"deleted on {clock().date()}: {gone.deletion_reason}"
    shred = entries(cnode, SOUTH, "holding.shred")[-1]
    assert (shred.actor, shred.object, shred.outcome) == ("node:retention", arrived.holding_id, "ok")
    audit = entries(cnode, SOUTH, "retention.delete")
    assert [(e.object, e.details["reason"], e.details["holding"]) for e in audit] == [
        (sent.id, gone.deletion_reason, arrived.holding_id)]

    # The certificate: what was sent (the provider's holding and hashes) and why it is gone.
    assert [n.state for n in certificates(cnode)] == ["pending"]
    claimed = peek_certificate(gone.certificate)
    assert (claimed.transfer, claimed.provider, claimed.recipient, claimed.holding) == (
        sent.id, NORTH, SOUTH, sent.holding_id)
    assert (claimed.plaintext_sha256, claimed.ciphertext_sha256) == (
        sent.manifest.plaintext.sha256, sent.manifest.ciphertext.sha256)
    assert claimed.agreement == sent.manifest.agreement and claimed.agreement.sha256 == record.hash
    assert claimed.reason == gone.deletion_reason and claimed.deleted == gone.deleted_at.replace(tzinfo=UTC)
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "due"

    assert send_notices(cnode, ctransport) == 1
    verified = ledger(cnode, sent.id)
    assert verified.deletion_verified_at == clock()
    deletion = verified.to_json(now=clock() + timedelta(days=400), detail=True)["deletion"]
    assert deletion["state"] == "verified" and deletion["words"] == "deleted at recipient, certificate verified"
    assert deletion["certificate"] == gone.certificate
    accepted = entries(cnode, NORTH, "transfer.deletion")
    assert [(e.object, e.details["reason"], e.details["recipient"]) for e in accepted] == [
        (sent.id, gone.deletion_reason, SOUTH)]

    # Idempotent: more sweeps send nothing more and fail on nothing.
    clock.advance(days=3)
    assert cnode.retention.sweep().to_json() == {"version": 1, "deleted": [], "overdue": [], "faults": []}
    assert len(certificates(cnode)) == 1 and len(entries(cnode, SOUTH, "retention.delete")) == 1
    assert len(entries(cnode, SOUTH, "holding.shred")) == 1


def test_revocation_after_delivery_deletes_at_once(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    record, sent = share_delivered(cnode, ctransport, tmp_path)  # kept 365 days
    arrived = inbound(cnode, sent.id)
    clock.advance(days=2)
    cnode.revoke_agreement(actor(NORTH), record.id, "the project has closed")
    send_notices(cnode, ctransport)  # the revocation reaches south-fen
    with pytest.raises(AgreementRefused):  # unusable at once, even before the sweep
        cnode.export(actor(SOUTH), arrived.holding_id, tmp_path / "out.csv")

    report = cnode.retention.sweep()
    assert report.deleted == [sent.id]
    # The provider expects the certificate from the revocation on, not a year later.
    assert ledger(cnode, sent.id).deletion_due_at == clock()
    assert shredded(cnode, arrived.holding_id)
    reason = inbound(cnode, sent.id).deletion_reason
    assert reason is not None and reason.startswith("agreement revoked: ")
    assert "the project has closed" in reason and record.id in reason

    assert send_notices(cnode, ctransport) == 1
    deletion = ledger(cnode, sent.id).to_json(now=clock())["deletion"]
    assert deletion["state"] == "verified" and deletion["certificate"]["body"]["reason"] == reason


def test_expiry_deletes_what_is_kept_until_the_agreement_ends(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    _record, sent = share_delivered(cnode, ctransport, tmp_path, until_end=True, end=date(2026, 4, 10))
    arrived = inbound(cnode, sent.id)
    assert arrived.retain_until is None
    assert arrived.to_json()["deletion"]["words"] == f"kept until agreement {arrived.agreement_id} ends"
    assert sent.deletion_due_at == datetime(2026, 4, 11, tzinfo=UTC)

    clock.now = datetime(2026, 4, 10, 23, 59, tzinfo=UTC)
    assert cnode.retention.sweep().deleted == []
    clock.now = datetime(2026, 4, 11, 0, 1, tzinfo=UTC)
    assert cnode.retention.sweep().deleted == [sent.id]
    assert shredded(cnode, arrived.holding_id)
    assert inbound(cnode, sent.id).deletion_reason == (
        f"agreement expired: agreement {arrived.agreement_id} ended on 2026-04-10")
    send_notices(cnode, ctransport)
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "verified"


def test_overdue_certificates_are_flagged_once(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    _record, sent = share_delivered(cnode, ctransport, tmp_path, days_after_receipt=10)
    assert sent.deletion_due_at is not None
    due = sent.deletion_due_at
    # The certificate never leaves south-fen (its notices are not sent): north-wold hears nothing.
    clock.now = due + timedelta(hours=23)
    report = cnode.retention.sweep()
    assert report.deleted == [sent.id] and report.overdue == []
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "due"

    clock.now = due + timedelta(days=1, minutes=1)
    assert cnode.retention.sweep().overdue == [sent.id]
    overdue_since = (due + timedelta(days=1)).date().isoformat()
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"] == {
        "state": "overdue", "due": ledger(cnode, sent.id).to_json()["deletion"]["due"], "certificate": None,
        "verified_at": None, "words": f"overdue since {overdue_since} (no deletion certificate)"}
    flags = entries(cnode, NORTH, "retention.overdue")
    assert [(e.object, e.details["recipient"]) for e in flags] == [(sent.id, SOUTH)]
    clock.advance(hours=5)
    assert cnode.retention.sweep().overdue == [sent.id]  # still overdue, flagged once
    assert len(entries(cnode, NORTH, "retention.overdue")) == 1

    # Late is better than never: the certificate clears the flag.
    assert send_notices(cnode, ctransport) == 1
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "verified"
    assert cnode.retention.sweep().overdue == []


def test_a_crash_between_shredding_and_recording_loses_no_certificate(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    _record, sent = share_delivered(cnode, ctransport, tmp_path, days_after_receipt=1)
    arrived = inbound(cnode, sent.id)
    clock.advance(days=1, minutes=1)
    # The sweep's first step, then the node died: the key is destroyed, nothing recorded or queued.
    cnode.shred(system(SOUTH), arrived.holding_id)
    shredded_at = clock()
    assert inbound(cnode, sent.id).deleted_at is None and certificates(cnode) == []

    clock.advance(minutes=5)  # restarted a little later
    assert cnode.retention.sweep().deleted == [sent.id]
    gone = inbound(cnode, sent.id)
    assert gone.deleted_at is not None and gone.deleted_at.replace(tzinfo=UTC) == shredded_at
    assert gone.deletion_reason is not None and gone.deletion_reason.startswith("retention ended")
    assert len(certificates(cnode)) == 1
    # The key was not destroyed twice, and nothing was refused along the way.
    assert len(entries(cnode, SOUTH, "holding.shred")) == 1
    assert all(e.outcome == "ok" for e in entries(cnode, SOUTH, "holding.shred"))
    # Recording it again (a second sweep at the same moment) changes nothing.
    assert cnode.retention.delete(SOUTH, sent.id, "retention ended: again") is False
    assert len(certificates(cnode)) == 1
    send_notices(cnode, ctransport)
    assert ledger(cnode, sent.id).deletion_verified_at is not None


def test_a_holding_shredded_early_by_a_person_is_certified_too(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    _record, sent = share_delivered(cnode, ctransport, tmp_path)
    arrived = inbound(cnode, sent.id)
    cnode.shred(actor(SOUTH), arrived.holding_id)
    assert cnode.retention.sweep().deleted == [sent.id]
    assert inbound(cnode, sent.id).deletion_reason == (
        "shredded at the recipient: the holding was shredded before its retention ended")
    send_notices(cnode, ctransport)
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "verified"


def test_a_superseded_agreement_ends_what_arrived_under_it(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    record, sent = share_delivered(cnode, ctransport, tmp_path)
    arrived = inbound(cnode, sent.id)
    # Version 2 of the same agreement (a longer retention), signed by both: version 1 stops.
    body = json.loads(draft(cnode, NORTH, [SOUTH], dataset="Residents", fields=["surname", "postcode"],
                            days_after_receipt=400))
    body["id"] = record.id
    second = cnode.create_agreement(actor(NORTH), json.dumps(body), fmt="json")
    assert second.version == 2
    cnode.propose_agreement(actor(NORTH), record.id, 2)
    send_notices(cnode, ctransport)
    clock.advance(days=1)
    for party in (NORTH, SOUTH):
        cnode.sign_agreement(actor(party, Role.DPO), record.id, 2)
        send_notices(cnode, ctransport)
    assert cnode.agreement_register.by_hash(SOUTH, record.hash).state == "superseded"

    assert cnode.retention.sweep().deleted == [sent.id]
    assert shredded(cnode, arrived.holding_id)
    assert inbound(cnode, sent.id).deletion_reason == (
        f"agreement superseded: agreement {record.id} version 1 was superseded by version 2")
    assert ledger(cnode, sent.id).deletion_due_at == clock()
    send_notices(cnode, ctransport)
    assert ledger(cnode, sent.id).to_json(now=clock())["deletion"]["state"] == "verified"
