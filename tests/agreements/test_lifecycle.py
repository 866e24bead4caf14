"""Every state change of an agreement, on a clock the test moves, on SQLite and PostgreSQL.

One node hosts north-wold and south-fen, which pin each other; proposals, signatures and revocations
travel between them through the node's own API (the app as the partner client's transport).
"""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest

from civicshare.access import Actor, Role
from civicshare.errors import Conflict, NotFound, PermissionDenied, UsageError
from civicshare.node import Node
from tests.agreements.lifecycle_support import activate, clock, cnode, ctransport, draft, send_notices
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.exchange.transfer_support import EAST, NORTH, SOUTH, entries

__all__ = ["clock", "cnode", "ctransport"]

DPO_N, DPO_S = actor(NORTH, Role.DPO), actor(SOUTH, Role.DPO)


def test_draft_proposed_signed_active_expired(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    created = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], dataset="tenants",
                                                         fields=["uprn", "name"]), fmt="json")
    record = cnode.agreement_register.find(NORTH, created.id)
    assert (record.state, record.stored_state, record.signatures) == ("draft", "draft", ())
    assert record.stop_words() == f"agreement {record.id} is a draft: it has not been proposed to the other parties " \
                                  "or signed"
    with pytest.raises(UsageError, match="is a draft; propose it to the other parties first"):
        cnode.sign_agreement(DPO_N, record.id)

    proposed = cnode.propose_agreement(actor(NORTH), record.id)
    assert (proposed.state, proposed.proposed_by) == ("proposed", NORTH)
    assert [(n.kind, n.recipient, n.state) for n in cnode.notices.list(NORTH)] == [
        ("agreement-proposal", SOUTH, "pending")]
    with pytest.raises(NotFound, match=f"no agreement '{record.id}' in the register of {SOUTH}"):
        cnode.agreement_register.find(SOUTH, record.id)
    assert send_notices(cnode, ctransport) == 1
    assert cnode.notices.list(NORTH)[0].state == "sent"

    theirs = cnode.agreement_register.find(SOUTH, record.id)
    assert (theirs.state, theirs.hash, theirs.proposed_by, theirs.created_by) == (
        "proposed", record.hash, NORTH, f"partner:{NORTH}")
    assert theirs.stop_words() == f"agreement {record.id} is not signed by every party yet (waiting for " \
                                  f"{NORTH}, {SOUTH})"

    cnode.sign_agreement(DPO_S, record.id)
    assert cnode.agreement_register.find(SOUTH, record.id).waiting_for == (NORTH,)
    send_notices(cnode, ctransport)
    ours = cnode.agreement_register.find(NORTH, record.id)
    assert ours.state == "proposed" and ours.waiting_for == (NORTH,)
    assert ours.stop_words() == f"agreement {record.id} is not signed by every party yet (waiting for {NORTH})"
    assert [(s.party, s.signed_by) for s in ours.signatures] == [(SOUTH, DPO_S.name)]

    clock.advance(hours=1)
    signed = cnode.sign_agreement(DPO_N, record.id)
    assert (signed.state, signed.stored_state, signed.stop_words()) == ("active", "signed", None)
    send_notices(cnode, ctransport)
    for org in (NORTH, SOUTH):
        held = cnode.agreement_register.find(org, record.id)
        assert held.state == "active" and held.fully_signed
        assert {s.party: s.signed_at for s in held.signatures}[NORTH] == clock.now
    with pytest.raises(Conflict, match=f"{NORTH} already signed {record.id} version 1 on 2026-04-01"):
        cnode.sign_agreement(DPO_N, record.id)

    # The last day is still in force; the day after, it has ended at both ends.
    clock.now = clock.now.replace(year=2027, month=3, day=31)
    assert cnode.agreement_register.find(SOUTH, record.id).state == "active"
    clock.advance(days=1)
    for org in (NORTH, SOUTH):
        ended = cnode.agreement_register.find(org, record.id)
        assert (ended.state, ended.stored_state) == ("expired", "signed")
        assert ended.stop_words() == f"agreement {record.id} ended on 2027-03-31"

    propose = entries(cnode, NORTH, "agreement.propose")
    assert [e.outcome for e in propose] == ["ok"] and propose[0].details["to"] == [SOUTH]
    assert [e.outcome for e in entries(cnode, NORTH, "agreement.sign")] == ["refused", "ok", "refused"]
    assert [e.details["kind"] for e in entries(cnode, SOUTH, "agreement.received")] == [
        "agreement-proposal", "agreement-signature"]
    assert [e.details["to"] for e in entries(cnode, SOUTH, "agreement.state")] == ["signed"]


def test_signed_before_start_is_not_yet_in_force(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    record = activate(cnode, ctransport, NORTH, [SOUTH], documents=True, start=date(2026, 6, 1))
    assert (record.state, record.stop_words()) == ("signed", f"agreement {record.id} starts on 2026-06-01")
    assert cnode.agreement_register.find(SOUTH, record.id).state == "signed"
    clock.now = clock.now.replace(month=6, day=1, hour=0)
    assert cnode.agreement_register.find(SOUTH, record.id).state == "active"
    assert [r.state for r in cnode.agreements(actor(NORTH))] == ["active"]


def test_revoked_at_both_ends(cnode: Node, ctransport: httpx.BaseTransport, clock: Clock) -> None:
    record = activate(cnode, ctransport, NORTH, [SOUTH], dataset="tenants", fields=["uprn"])
    clock.advance(days=31)
    with pytest.raises(UsageError, match="Give the reason"):
        cnode.revoke_agreement(actor(NORTH), record.id, "  ")
    with pytest.raises(PermissionDenied, match="may not revoke"):
        cnode.revoke_agreement(actor(NORTH, Role.CASEWORKER), record.id, "no")
    revoked = cnode.revoke_agreement(actor(NORTH), record.id, "the tenancy project closed early")
    words = f"agreement {record.id} was revoked by {NORTH} on 2026-05-02: the tenancy project closed early"
    assert (revoked.state, revoked.stop_words()) == ("revoked", words)
    # Still in force at south-fen until the revocation arrives, then revoked there too, from the same moment.
    assert cnode.agreement_register.find(SOUTH, record.id).state == "active"
    assert [n.kind for n in cnode.agreement_notices(actor(NORTH), record.id)] == ["agreement-revocation"]
    send_notices(cnode, ctransport)
    theirs = cnode.agreement_register.find(SOUTH, record.id)
    assert (theirs.state, theirs.revoked_by, theirs.revoked_at, theirs.stop_words()) == (
        "revoked", NORTH, clock.now.replace(microsecond=0), words)
    assert cnode.agreement_notices(actor(NORTH), record.id) == []
    document = cnode.agreement_lifecycle.revocation_document(SOUTH, record.id, 1)
    assert document is not None and document["body"]["revoked_by"] == actor(NORTH).name
    for org in (NORTH, SOUTH):
        with pytest.raises(Conflict, match="was already revoked"):
            cnode.revoke_agreement(actor(org), record.id, "again")
    with pytest.raises(Conflict, match="is revoked, so it cannot be proposed"):
        cnode.propose_agreement(actor(NORTH), record.id)
    assert entries(cnode, NORTH, "agreement.revoke")[-1].outcome == "refused"
    received = entries(cnode, SOUTH, "agreement.received")[-1]
    assert received.details["kind"] == "agreement-revocation" and received.details["state"] == "revoked"


def test_revocation_from_the_recipient_reaches_the_provider(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    record = activate(cnode, ctransport, NORTH, [SOUTH], documents=True)
    cnode.revoke_agreement(actor(SOUTH), record.id, "consent withdrawn")
    send_notices(cnode, ctransport)
    ours = cnode.agreement_register.find(NORTH, record.id)
    assert (ours.state, ours.revoked_by, ours.revoked_reason) == ("revoked", SOUTH, "consent withdrawn")


def test_a_new_version_signed_by_all_supersedes_the_old(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    first = activate(cnode, ctransport, NORTH, [SOUTH], dataset="tenants", fields=["uprn", "name"])
    body = first.agreement.to_body()
    body["purpose"] = "Tenancy fraud checks, extended to right-to-buy applications."
    body["agreement_version"] = None
    second = cnode.create_agreement(actor(NORTH), json.dumps(body), fmt="json")
    assert (second.id, second.version, second.state) == (first.id, 2, "draft")
    # Until version 2 is signed by every party, version 1 stays the one in force.
    assert cnode.agreement_register.find(NORTH, first.id).version == 1
    cnode.propose_agreement(actor(NORTH), first.id)
    send_notices(cnode, ctransport)
    assert cnode.agreement_register.find(SOUTH, first.id).version == 1
    assert cnode.agreement_register.find(SOUTH, first.id, 2).state == "proposed"
    cnode.sign_agreement(DPO_N, first.id, 2)
    send_notices(cnode, ctransport)
    assert cnode.agreement_register.find(NORTH, first.id, 1).state == "active"
    cnode.sign_agreement(DPO_S, first.id)  # the newest version
    send_notices(cnode, ctransport)
    for org in (NORTH, SOUTH):
        old = cnode.agreement_register.find(org, first.id, 1)
        assert (old.state, old.superseded_by) == ("superseded", 2)
        assert old.stop_words() == f"agreement {first.id} version 1 was superseded by version 2"
        assert cnode.agreement_register.find(org, first.id).version == 2
        assert cnode.agreement_register.find(org, first.id).state == "active"
    with pytest.raises(Conflict, match="already superseded by version 2; revoke that version instead"):
        cnode.revoke_agreement(actor(NORTH), first.id, "old", version=1)
    with pytest.raises(Conflict, match="is superseded; it can no longer be signed"):
        cnode.sign_agreement(DPO_N, first.id, 1)
    changes = [(e.details["version"], e.details["to"]) for e in entries(cnode, NORTH, "agreement.state")]
    assert changes[-2:] == [(1, "superseded"), (2, "signed")]


def test_only_a_data_protection_officer_signs(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    record = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], documents=True), fmt="json")
    cnode.propose_agreement(actor(NORTH), record.id)
    for who in (Actor.operator(NORTH, "root"), actor(NORTH), actor(NORTH, Role.CASEWORKER)):
        with pytest.raises(PermissionDenied, match=r"may not sign data sharing agreements: only a data protection "
                                                   r"officer \(a user with the dpo role\) signs for north-wold"):
            cnode.sign_agreement(who, record.id)
    refused = entries(cnode, NORTH, "agreement.sign")
    assert [e.outcome for e in refused] == ["refused"] * 3 and refused[0].actor == "cli:root"
    assert cnode.agreement_register.find(NORTH, record.id).signatures == ()

    cnode.add_user(NORTH, "jo", Role.ADMIN)
    cnode.add_user(NORTH, "sam", Role.DPO)
    with pytest.raises(PermissionDenied, match="jo is an administrator, not a data protection officer"):
        cnode.dpo_actor(NORTH, "jo", operator="cli:root")
    with pytest.raises(PermissionDenied, match="north-wold has no user called 'kim'"):
        cnode.dpo_actor(NORTH, "kim", operator="cli:root")
    dpo = cnode.dpo_actor(NORTH, "sam", operator="cli:root")
    signed = cnode.sign_agreement(dpo, record.id, operator="cli:root")
    assert [(s.party, s.signed_by) for s in signed.signatures] == [(NORTH, "sam")]
    last = entries(cnode, NORTH, "agreement.sign")[-1]
    assert (last.actor, last.outcome, last.details["operator"]) == ("sam", "ok", "cli:root")


def test_numbering_skips_received_ids(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    record = activate(cnode, ctransport, NORTH, [SOUTH], documents=True)
    assert record.id == "DSA-2026-0001"
    own = cnode.create_agreement(actor(SOUTH), draft(cnode, SOUTH, [NORTH], documents=True), fmt="json")
    assert own.id == "DSA-2026-0002"
    # An id this register already uses with another provider is refused, even when written in the file.
    body = json.loads(draft(cnode, SOUTH, [NORTH], documents=True, days_after_receipt=30))
    body["id"] = "DSA-2026-0001"
    with pytest.raises(Conflict, match="The agreement id DSA-2026-0001 is already used in the register of south-fen "
                                       "for an agreement with north-wold as provider"):
        cnode.create_agreement(actor(SOUTH), json.dumps(body), fmt="json")


def test_proposal_id_collision_from_another_provider_is_refused(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    ours = cnode.create_agreement(actor(NORTH), draft(cnode, NORTH, [SOUTH], documents=True), fmt="json")
    theirs = cnode.create_agreement(actor(SOUTH), draft(cnode, SOUTH, [NORTH], dataset="tenants", fields=["uprn"]),
                                    fmt="json")
    assert ours.id == theirs.id == "DSA-2026-0001"
    cnode.propose_agreement(actor(SOUTH), theirs.id)
    assert send_notices(cnode, ctransport) == 0
    [notice] = cnode.notices.list(SOUTH)
    assert notice.state == "failed"
    assert notice.last_error == (
        "north-wold refused the agreement-proposal of DSA-2026-0001 version 1 (HTTP 409, conflict): The agreement "
        "id DSA-2026-0001 is already used in the register of north-wold for an agreement with north-wold as "
        "provider; an agreement with south-fen as provider needs another id.")
    refused = entries(cnode, NORTH, "exchange.refused")[-1]
    assert (refused.details["kind"], refused.details["code"]) == ("agreement-proposal", "conflict")
    assert cnode.agreement_register.find(NORTH, ours.id).agreement.provider == NORTH
    assert [(e.outcome, e.details["reason"][:40]) for e in entries(cnode, SOUTH, "notice.failed")] == [
        ("failed", notice.last_error[:40])]


def test_three_parties_each_sign_and_hear_from_the_others(cnode: Node, ctransport: httpx.BaseTransport) -> None:
    # east-marsh is hosted here but pins nobody: its notices are handed over on the node itself,
    # while north-wold and south-fen talk over the exchange.
    cnode.add_organisation(EAST, "East Marsh Council")
    record = activate(cnode, ctransport, NORTH, [SOUTH, EAST], dataset="tenants", fields=["uprn"])
    for org in (NORTH, SOUTH, EAST):
        held = cnode.agreement_register.find(org, record.id)
        assert held.state == "active" and sorted(held.signed_parties) == [EAST, NORTH, SOUTH], org
    assert {n.recipient for n in cnode.notices.list(EAST)} == {NORTH, SOUTH}
    assert all(n.state == "sent" for org in (NORTH, SOUTH, EAST) for n in cnode.notices.list(org))
    cnode.revoke_agreement(actor(EAST), record.id, "east-marsh leaves the partnership")
    send_notices(cnode, ctransport)
    assert {cnode.agreement_register.find(org, record.id).state for org in (NORTH, SOUTH, EAST)} == {"revoked"}
