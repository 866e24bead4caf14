"""Every later use of a received holding checks its agreement again: view, export, onward share.

Expiry or revocation stops access at the recipient at once (no transfer needed to notice), from the
core and from the API; an onward share is refused unless the agreement allows it. The provider's own
holdings are never held back by an agreement.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from civicshare.access import Role
from civicshare.agreements.enforce import RULE_ACTIVE, RULE_ONWARD
from civicshare.api.app import create_app
from civicshare.errors import AgreementRefused, UsageError
from civicshare.holdings.store import Holding
from civicshare.node import Node
from tests.agreements.enforce_support import (
    AGREED,
    EAST,
    clock,
    cnode,
    ctransport,
    deliver,
    entries,
    residents,
)
from tests.agreements.lifecycle_support import activate, send_notices
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import NORTH, SOUTH, URL

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

TODAY = date(2026, 4, 1)


def _received(node: Node, transport: httpx.BaseTransport, tmp_path: Path, **options: object) -> tuple[str, Holding]:
    """North-wold shares its residents with south-fen under a new agreement; south-fen's new holding."""
    agreement = activate(node, transport, NORTH, [SOUTH], dataset="Residents", fields=AGREED, **options).id  # type: ignore[arg-type]
    transfer = node.share(actor(NORTH), residents(node, tmp_path).id, SOUTH, agreement=agreement)
    assert deliver(node, transport) == {transfer.id: "delivered"}
    [arrived] = node.inbox(actor(SOUTH))
    return agreement, node.holding(actor(SOUTH), arrived.holding_id or "")


def _stopped(node: Node, holding_id: str, tmp_path: Path, words: str) -> None:
    """Viewing and exporting the holding at south-fen are refused with ``words``, and logged."""
    unwrapped = len(entries(node, SOUTH, "key.unwrap"))
    with pytest.raises(AgreementRefused) as caught:
        node.export(actor(SOUTH), holding_id, tmp_path / "refused.csv")
    assert caught.value.rule == RULE_ACTIVE and words in caught.value.reason
    assert not (tmp_path / "refused.csv").exists()
    logged = entries(node, SOUTH, "holding.export")[-1]
    assert (logged.object, logged.outcome, logged.details["code"]) == (holding_id, "refused", "agreement_refused")
    assert words in logged.details["reason"]
    with pytest.raises(AgreementRefused, match=words):
        node.holding(actor(SOUTH), holding_id)
    assert entries(node, SOUTH, "holding.view")[-1].outcome == "refused"
    assert len(entries(node, SOUTH, "key.unwrap")) == unwrapped  # the data key was never unwrapped


def test_revocation_after_delivery_stops_view_and_export_at_once(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement, holding = _received(cnode, ctransport, tmp_path)
    cnode.export(actor(SOUTH), holding.id, tmp_path / "before.csv")  # allowed while in force
    cnode.revoke_agreement(actor(NORTH), agreement, "the project has closed")
    send_notices(cnode, ctransport)  # the revocation reaches south-fen
    _stopped(cnode, holding.id, tmp_path,
             f"agreement {agreement} was revoked by north-wold on 2026-04-01: the project has closed")
    # Listing still shows it, so people can see what they hold and why it is closed to them.
    assert holding.id in [h.id for h in cnode.list_holdings(actor(SOUTH))]
    # North-wold's own holding is its own, whatever became of the agreement.
    own = cnode.list_holdings(actor(NORTH))[0]
    cnode.export(actor(NORTH), own.id, tmp_path / "own.csv")


def test_the_recipients_own_revocation_stops_access_at_once(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement, holding = _received(cnode, ctransport, tmp_path)
    cnode.revoke_agreement(actor(SOUTH), agreement, "data breach under investigation")
    _stopped(cnode, holding.id, tmp_path, f"agreement {agreement} was revoked by south-fen")


def test_expiry_after_delivery_stops_access(
        cnode: Node, ctransport: httpx.BaseTransport, clock: Clock, tmp_path: Path) -> None:
    agreement, holding = _received(cnode, ctransport, tmp_path, end=TODAY + timedelta(days=5))
    clock.advance(days=5)
    cnode.export(actor(SOUTH), holding.id, tmp_path / "last-day.csv")
    clock.advance(days=1)
    _stopped(cnode, holding.id, tmp_path, f"agreement {agreement} ended on 2026-04-06")


def test_the_api_refuses_with_the_rule_and_the_reason(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement, holding = _received(cnode, ctransport, tmp_path)
    _user, token = cnode.add_user(SOUTH, "sam", Role.RECORDS_MANAGER)
    api = TestClient(create_app(cnode), base_url=URL, headers={"Authorization": f"Bearer {token}"})
    assert api.get(f"/v1/holdings/{holding.id}/export").status_code == 200
    cnode.revoke_agreement(actor(SOUTH), agreement, "ended early")
    for path in (f"/v1/holdings/{holding.id}/export", f"/v1/holdings/{holding.id}"):
        answer = api.get(path)
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert (error["code"], error["rule"]) == ("agreement_refused", RULE_ACTIVE)
        assert error["reason"].startswith(f"agreement {agreement} was revoked by south-fen")


def _onward_agreement(node: Node, transport: httpx.BaseTransport) -> str:
    """South-fen's own agreement to pass the surnames of its Residents on to east-marsh."""
    return activate(node, transport, SOUTH, [EAST], dataset="Residents", fields=["surname"]).id


def test_onward_sharing_is_refused_unless_the_agreement_allows_it(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    agreement, holding = _received(cnode, ctransport, tmp_path)  # onward_sharing: false
    onward = _onward_agreement(cnode, ctransport)
    with pytest.raises(AgreementRefused) as caught:
        cnode.share(actor(SOUTH), holding.id, EAST, agreement=onward)
    assert caught.value.rule == RULE_ONWARD
    assert caught.value.reason == f"onward sharing is not allowed under agreement {agreement}"
    logged = entries(cnode, SOUTH, "transfer.create")[-1]
    assert (logged.outcome, logged.details["code"]) == ("refused", "agreement_refused")
    assert cnode.transfers(actor(SOUTH)) == []
    # Viewing and exporting it are still allowed: only passing it on is not.
    cnode.export(actor(SOUTH), holding.id, tmp_path / "ours.csv")


def test_onward_sharing_allowed_by_the_agreement_still_needs_its_own(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    _agreement, holding = _received(cnode, ctransport, tmp_path, onward_sharing=True)
    with pytest.raises(AgreementRefused, match="Every share needs a data sharing agreement"):
        cnode.share(actor(SOUTH), holding.id, EAST)
    onward = _onward_agreement(cnode, ctransport)
    transfer = cnode.share(actor(SOUTH), holding.id, EAST, agreement=onward)
    assert transfer.manifest.holding.column_names == ["surname"]  # minimised again, to the onward agreement
    assert deliver(cnode, ctransport) == {transfer.id: "delivered"}
    [arrived] = cnode.inbox(actor(EAST))
    out = tmp_path / "east.csv"
    cnode.export(actor(EAST), arrived.holding_id or "", out)
    assert out.read_text(encoding="utf-8").splitlines() == ["surname", "Abbott", "Brown", "Čapek"]


def test_an_unknown_use_is_a_usage_error(cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    _agreement, holding = _received(cnode, ctransport, tmp_path)
    with pytest.raises(UsageError, match="Unknown use 'print'"):
        cnode.agreement_guard.check_access(actor(SOUTH), holding.id, "print")
    cnode.agreement_guard.check_access(actor(SOUTH), holding.id, "view")
