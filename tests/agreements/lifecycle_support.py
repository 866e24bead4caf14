"""Agreements in force for tests: draft, propose, sign at every party, over the node's own exchange.

``activate`` works on one node hosting every party (such as ``xnode`` in tests/exchange/transfer_support.py,
whose organisations pin each other): the provider's records manager drafts from the template and
proposes, notices travel through the app (``transport``), each party's data protection officer signs,
and the signatures travel back. It returns the provider's record, signed by every party.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from civicshare.access import Role
from civicshare.agreements.model import Contact, DocumentItems, Party, Signatory
from civicshare.agreements.parse import parse_agreement
from civicshare.agreements.register import AgreementRecord
from civicshare.node import Node
from tests.agreements.support import Clock
from tests.conftest import actor
from tests.support.partner_node import app_transport, partner_node


def send_notices(node: Node, transport: httpx.BaseTransport | None, rounds: int = 4) -> int:
    """Send every due notice (through ``transport``), a few rounds, until none is left due; returns the count."""
    sent = 0
    for _ in range(rounds):
        client = node.partner_client(transport=transport) if transport is not None else None
        try:
            n = node.notices.send_due(client)
        finally:
            if client is not None:
                client.close()
        sent += n
        if n == 0:
            break
    return sent


def draft(node: Node, provider: str, recipients: Sequence[str], *, dataset: str | None = None,
          fields: Sequence[str] | None = None, documents: bool = False, media_types: Sequence[str] | None = None,
          days_after_receipt: int | None = None, until_end: bool = False, start: date | None = None,
          end: date | None = None, onward_sharing: bool = False, classification: str = "OFFICIAL",
          minimum_quality: int | None = None) -> str:
    """The JSON text of an agreement from ``provider`` to ``recipients``, from the template, as asked."""
    if not recipients:
        raise ValueError("an agreement needs at least one recipient")
    if dataset is None and not documents:
        raise ValueError("say what the agreement covers: dataset=NAME or documents=True")
    manager = actor(provider)
    text = node.agreement_template(manager, provider, recipients[0], dataset=dataset,
                                   fields=list(fields) if fields is not None else None, documents=documents)
    agreement = parse_agreement(text)
    parties = list(agreement.parties)
    contacts = list(agreement.contacts)
    signatories = list(agreement.signatories)
    names = {o.id: o.name for o in node.organisations()}
    for org in recipients[1:]:
        role = parties[-1].role
        parties.append(Party(org, names.get(org, org), role))
        contacts.append(Contact(org, f"Data protection officer of {org}", f"dpo@{org}.example"))
        signatories.append(Signatory(org, f"Senior officer of {org}", "Director"))
    items = agreement.data_items
    if media_types is not None:
        assert isinstance(items, DocumentItems), "media_types go with documents=True"
        items = replace(items, media_types=tuple(media_types))
    start = start or agreement.start_date
    end = end or (agreement.end_date if start == agreement.start_date else start + timedelta(days=364))
    review = max(start, end - timedelta(days=91))
    retention = None if until_end else (days_after_receipt if days_after_receipt is not None
                                        else agreement.retention_days)
    agreement = replace(agreement, parties=tuple(parties), recipients=tuple(recipients), contacts=tuple(contacts),
                        signatories=tuple(signatories), data_items=items, retention_days=retention,
                        start_date=start, end_date=end, review_date=review, onward_sharing=onward_sharing,
                        classification=classification, minimum_quality=minimum_quality)
    body = agreement.to_body()
    del body["id"], body["agreement_version"]
    return json.dumps(body)


def activate(node: Node, transport: httpx.BaseTransport | None, provider: str, recipients: Sequence[str], *,
             dataset: str | None = None, fields: Sequence[str] | None = None, documents: bool = False,
             media_types: Sequence[str] | None = None, days_after_receipt: int | None = None,
             until_end: bool = False, start: date | None = None, end: date | None = None,
             onward_sharing: bool = False, classification: str = "OFFICIAL",
             minimum_quality: int | None = None) -> AgreementRecord:
    """An agreement signed by every party, on one node hosting them all; the provider's record.

    ``days_after_receipt`` None keeps the template's retention (365 days); ``until_end=True`` keeps
    received data until the agreement ends. With the default dates the agreement is active now (by
    the node's clock); with a later ``start`` it is ``signed`` and starts then.
    """
    text = draft(node, provider, recipients, dataset=dataset, fields=fields, documents=documents,
                 media_types=media_types, days_after_receipt=days_after_receipt, until_end=until_end, start=start,
                 end=end, onward_sharing=onward_sharing, classification=classification,
                 minimum_quality=minimum_quality)
    manager = actor(provider)
    record = node.create_agreement(manager, text, fmt="json")
    node.propose_agreement(manager, record.id, record.version)
    send_notices(node, transport)
    for party in [provider, *recipients]:
        node.sign_agreement(actor(party, Role.DPO), record.id, record.version)
        send_notices(node, transport)
    for party in [provider, *recipients]:
        held = node.agreement_register.find(party, record.id, record.version)
        assert held.fully_signed and held.hash == record.hash, (party, held.stored_state, held.waiting_for)
    return node.agreement_register.find(provider, record.id, record.version)


# Fixtures: the transfer tests' two pinned organisations on one node, on a clock the test moves. -------

@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cnode(tmp_path: Path, db_url: str | None, clock: Clock) -> Iterator[Node]:
    """A node at URL hosting north-wold and south-fen, pinning each other, on ``clock``."""
    n = partner_node(tmp_path / "home", db_url, clock=clock)
    yield n
    n.close()


@pytest.fixture
def ctransport(cnode: Node) -> httpx.BaseTransport:
    """The clocked node's own API as the partner client's transport."""
    return app_transport(cnode)
