"""The recipient checks the agreement itself, on arrival and again at commit, whatever the sender did.

A sender that skips its own checks is played by ``bypass_manifest``: it seals what it likes and signs
the manifest with north-wold's real key, so the signature verifies and only south-fen's own checks
stand in the way. Every refusal is logged at south-fen (transfer.refused, code agreement_refused, with
the rule) and nothing is stored.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from civicshare.agreements.enforce import RULE_ACTIVE, RULE_CLASSIFICATION, RULE_ITEMS, RULE_SAME
from civicshare.db import tables as t
from civicshare.errors import AgreementRefused, NotForUs
from civicshare.exchange.inbox import Inbox
from civicshare.exchange.manifest import AgreementRef
from civicshare.exchange.package import write_package
from civicshare.node import Node
from tests.agreements.enforce_support import (
    AGREED,
    bypass_manifest,
    clock,
    cnode,
    ctransport,
    deliver,
    entries,
    put_manifest,
    residents,
)
from tests.agreements.lifecycle_support import activate
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

TODAY = date(2026, 4, 1)


def _ref(node: Node, agreement_id: str) -> AgreementRef:
    record = node.agreement_register.find(NORTH, agreement_id)
    return AgreementRef(record.id, record.version, record.hash)


def _inbound(node: Node) -> list[object]:
    with node.db.engine.connect() as conn:
        return list(conn.execute(select(t.inbound.c.transfer_id, t.inbound.c.state).where(
            t.inbound.c.org_id == SOUTH)).all())


def _refused_over_http(node: Node, transport: httpx.BaseTransport, document: dict[str, object], rule: str,
                       words: str) -> None:
    """PUT the manifest through south-fen's gate: 403 agreement_refused with the rule and reason; logged."""
    before = len(node.list_holdings(actor(SOUTH)))
    answer = put_manifest(node, transport, document)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["rule"]) == ("agreement_refused", rule)
    assert words in error["reason"] and error["message"].startswith(rule)
    logged = entries(node, SOUTH, "transfer.refused")[-1]
    assert logged.object == document["body"]["transfer"]  # type: ignore[index]
    assert (logged.details["code"], logged.details["rule"], logged.details["step"]) == (
        "agreement_refused", rule, "manifest")
    assert _inbound(node) == [] and len(node.list_holdings(actor(SOUTH))) == before


def test_an_agreement_the_recipient_does_not_hold_is_refused(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    unknown = AgreementRef("DSA-2026-0099", 1, "0" * 64)
    _m, document, _s = bypass_manifest(cnode, holding.id, unknown, tmp_path / "a.age", columns=AGREED)
    _refused_over_http(cnode, ctransport, document, RULE_SAME,
                       "south-fen holds no agreement DSA-2026-0099 version 1 with the hash the manifest names")
    # An agreement south-fen holds, named with another id or version than its hash has there.
    real = _ref(cnode, activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id)
    wrong = AgreementRef(real.id, 2, real.sha256)
    _m, document, _s = bypass_manifest(cnode, holding.id, wrong, tmp_path / "b.age", columns=AGREED)
    _refused_over_http(cnode, ctransport, document, RULE_SAME,
                       f"the manifest names agreement {real.id} version 2, but that hash is agreement {real.id} "
                       "version 1 here")


def test_columns_beyond_the_agreed_fields_are_refused(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    ref = _ref(cnode, activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id)
    _m, document, _s = bypass_manifest(cnode, holding.id, ref, tmp_path / "all.age")  # every column
    _refused_over_http(cnode, ctransport, document, RULE_ITEMS,
                       f"fields nhs_number, date_of_birth are not in the agreed data items of agreement {ref.id}")
    _m, document, _s = bypass_manifest(cnode, holding.id, ref, tmp_path / "one.age",
                                       columns=["surname", "nhs_number"])
    _refused_over_http(cnode, ctransport, document, RULE_ITEMS,
                       f"field nhs_number is not in the agreed data items of agreement {ref.id}")


def test_a_classification_beyond_the_agreement_is_refused(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path, classification="OFFICIAL-SENSITIVE")
    ref = _ref(cnode, activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id)
    _m, document, _s = bypass_manifest(cnode, holding.id, ref, tmp_path / "s.age", columns=AGREED)
    _refused_over_http(cnode, ctransport, document, RULE_CLASSIFICATION,
                       f"this holding is OFFICIAL-SENSITIVE; agreement {ref.id} allows OFFICIAL only")


def test_an_agreement_the_recipient_revoked_is_refused_even_if_the_sender_does_not_know(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id
    # South-fen revokes; its notice has not reached north-wold, whose copy is still active.
    cnode.revoke_agreement(actor(SOUTH), agreement, "no longer needed")
    assert cnode.agreement_register.find(NORTH, agreement).state == "active"
    transfer = cnode.share(actor(NORTH), residents(cnode, tmp_path).id, SOUTH, agreement=agreement)
    assert deliver(cnode, ctransport) == {transfer.id: "failed"}  # refused for good, not retried
    failed = cnode.transfer(actor(NORTH), transfer.id)
    assert failed.failed_reason is not None
    assert "south-fen refused the manifest (HTTP 403, agreement_refused)" in failed.failed_reason
    assert f"agreement {agreement} was revoked by south-fen on 2026-04-01: no longer needed" in failed.failed_reason
    logged = entries(cnode, SOUTH, "transfer.refused")[-1]
    assert (logged.object, logged.details["code"], logged.details["rule"]) == (
        transfer.id, "agreement_refused", RULE_ACTIVE)
    assert _inbound(cnode) == [] and cnode.list_holdings(actor(SOUTH)) == []


def test_expiry_during_the_transfer_is_refused_at_commit(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    agreement = activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED,
                         end=TODAY + timedelta(days=1)).id
    transfer = cnode.exchange.outbox.share(actor(NORTH), residents(cnode, tmp_path).id, SOUTH, agreement=agreement,
                                           part_size=256)
    payload = (cnode.layout.home / (transfer.payload or "")).read_bytes()
    inbox = Inbox(cnode)
    inbox.put_manifest(SOUTH, NORTH, transfer.id, transfer.manifest_text.encode())
    [row] = inbox.entries(actor(SOUTH))
    assert (row.agreement_id, row.agreement_version, row.agreement_hash) == (
        agreement, 1, transfer.manifest.agreement.sha256)
    for n in range(transfer.manifest.part_count):
        inbox.put_part(SOUTH, NORTH, transfer.id, n, payload[n * 256:(n + 1) * 256])
    clock.advance(days=2)  # the last part arrived after the agreement's last day
    with pytest.raises(AgreementRefused, match=f"agreement {agreement} ended on 2026-04-02"):
        inbox.commit(SOUTH, NORTH, transfer.id)
    [row] = inbox.entries(actor(SOUTH))
    assert row.state == "refused" and row.refused_reason and "ended on 2026-04-02" in row.refused_reason
    assert row.holding_id is None and cnode.list_holdings(actor(SOUTH)) == []
    assert not (cnode.layout.staging_dir(SOUTH) / transfer.id).exists()
    logged = entries(cnode, SOUTH, "transfer.refused")[-1]
    assert (logged.details["step"], logged.details["code"]) == ("commit", "agreement_refused")
    with pytest.raises(NotForUs, match="ended on 2026-04-02"):  # asked again: the same refusal
        inbox.commit(SOUTH, NORTH, transfer.id)


def test_an_offline_package_gets_the_same_checks(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = residents(cnode, tmp_path)
    ref = _ref(cnode, activate(cnode, ctransport, NORTH, [SOUTH], dataset="Residents", fields=AGREED).id)
    _m, document, sealed = bypass_manifest(cnode, holding.id, ref, tmp_path / "all.age")
    package = tmp_path / "for-south-fen.tar"
    write_package(package, document, sealed.path)
    with pytest.raises(AgreementRefused, match="fields nhs_number, date_of_birth are not in the agreed data items"):
        cnode.receive(actor(SOUTH), package)
    assert cnode.list_holdings(actor(SOUTH)) == [] and _inbound(cnode) == []
    assert not (tmp_path / "for-south-fen.tar.receipt.json").exists()
    logged = entries(cnode, SOUTH, "transfer.refused")[-1]
    assert (logged.details["code"], logged.details["step"]) == ("agreement_refused", "manifest")
    # The same holding, minimised as agreed, is taken.
    _m, document, sealed = bypass_manifest(cnode, holding.id, ref, tmp_path / "agreed.age", columns=AGREED)
    write_package(tmp_path / "agreed.tar", document, sealed.path)
    assert cnode.receive(actor(SOUTH), tmp_path / "agreed.tar")["state"] == "delivered"
