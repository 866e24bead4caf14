"""The agreements part of ``civicshare demo``: propose, sign, use, refuse outside, revoke and see the deletion.

North Wold (node A) and East Marsh (node B) agree which fields of the residents dataset may go to
East Marsh; North Wold and South Fen (both on node A) agree that South Fen may receive plain-text
documents. A records manager drafts each agreement from the template and proposes it; a data
protection officer at every party signs it; the proposals and signatures travel between the nodes
as signed notices, delivered by ``civicshare serve``. Shares outside an agreement are refused with
the reason in plain words. When North Wold revokes the agreement, East Marsh's node shreds its copy
by itself and sends a signed deletion certificate, which North Wold's node verifies.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from civicshare.access import Actor, Role
from civicshare.agreements.register import AgreementRecord
from civicshare.demo_nodes import DemoFailed
from civicshare.demo_nodes import check as _check
from civicshare.errors import AgreementRefused, NotFound, Shredded
from civicshare.exchange.transfers import Transfer
from civicshare.memfile import memory_file
from civicshare.node import Node

# Notices and the retention sweep run every second or less in the demo's nodes; this is ample.
SETTLE_SECONDS = 60.0
# East Marsh's council tax work needs these fields of the residents dataset, and no others.
AGREED_FIELDS = ("resident_id", "title", "first_name", "last_name", "address_line_1", "town", "postcode",
                 "council_tax_band")
RECORDS_MANAGER, DPO = "demo-records-manager", "demo-dpo"
T = TypeVar("T")


def records_manager(org: str) -> Actor:
    return Actor(org, RECORDS_MANAGER, Role.RECORDS_MANAGER)


def dpo(org: str) -> Actor:
    return Actor(org, DPO, Role.DPO)


def wait_until(condition: Callable[[], T | None], what: str, timeout: float = SETTLE_SECONDS) -> T:
    """Poll ``condition`` until it returns something truthy; the demo fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"Demo check failed: {what} within {timeout:.0f} s")
        time.sleep(0.1)


def _fill(text: str, pattern: str, line: str) -> str:
    text, found = re.subn(pattern, line, text, count=1, flags=re.MULTILINE)
    _check(found == 1, f"the agreement template has a line matching {pattern!r}")
    return text


def _reviewed(template: str, purpose: str, media_types: Sequence[str] | None = None) -> str:
    """The template with the lines a records manager fills in: the purpose, and the kinds of file."""
    # JSON strings are valid YAML scalars, whatever they hold.
    text = _fill(template, r"^purpose: .*$", f"purpose: {json.dumps(purpose)}")
    if media_types is not None:
        text = _fill(text, r"^  media_types: .*$", f"  media_types: {json.dumps(list(media_types))}")
    return text


@dataclass(frozen=True)
class Party:
    """One council taking part in an agreement, and the node that hosts it."""

    org: str
    name: str  # as people say it: "North Wold"
    node: Node


def _active_at(party: Party, agreement_id: str) -> AgreementRecord | None:
    try:
        record = party.node.agreement(records_manager(party.org), agreement_id)
    except NotFound:  # not arrived yet: the notice is on its way
        return None
    return record if record.state == "active" else None


def make_agreement(provider: Party, recipient: Party, purpose: str, say: Callable[[str], None], *,
                   dataset: str | None = None, fields: Sequence[str] | None = None,
                   media_types: Sequence[str] | None = None) -> AgreementRecord:
    """Draft, propose and sign an agreement at both parties; returns it once active at both ends."""
    author = records_manager(provider.org)
    template = provider.node.agreement_template(author, provider.org, recipient.org, dataset=dataset,
                                                fields=fields, documents=dataset is None)
    draft = provider.node.create_agreement(author, _reviewed(template, purpose, media_types))
    provider.node.propose_agreement(author, draft.id)
    # As the CLI does: send the notice at once; `serve` retries whatever does not get through.
    provider.node.send_notices(provider.org)
    covered = (f"the fields {', '.join(fields or ())} of {dataset}" if dataset is not None
               else f"documents of type {', '.join(media_types or ())}")
    say(f"{provider.name}'s records manager drafted {draft.id} from the template ({covered}) and proposed it "
        f"to {recipient.name}.")
    wait_until(lambda: _arrived(recipient, draft.id), f"the proposal of {draft.id} to reach {recipient.org}")
    for party in (recipient, provider):
        party.node.sign_agreement(dpo(party.org), draft.id)
        party.node.send_notices(party.org)
    say(f"The data protection officers of {recipient.name} and {provider.name} each signed {draft.id} with "
        "their council's key; the signatures crossed between them as signed notices.")
    active = [wait_until(functools.partial(_active_at, party, draft.id), f"{draft.id} to be active at {party.org}")
              for party in (provider, recipient)]
    _check(active[0].hash == active[1].hash == draft.hash,
           f"both parties hold {draft.id} with the same hash")
    say(f"{draft.id} is active at both ends, the same agreement (sha256 {draft.hash[:16]}...), valid "
        f"{draft.agreement.start_date} to {draft.agreement.end_date}.")
    return active[0]


def _arrived(party: Party, agreement_id: str) -> bool:
    try:
        party.node.agreement(records_manager(party.org), agreement_id)
    except NotFound:  # not arrived yet
        return False
    return True


def refused(attempt: Callable[[], object], what: str) -> str:
    """Run a share that must be refused; returns the plain-words refusal."""
    try:
        attempt()
    except AgreementRefused as exc:
        return exc.message
    raise DemoFailed(f"Demo check failed: {what} was not refused")


def show_refusals(node: Node, provider: str, recipient: str, outsider: str, agreement_id: str, dataset_id: str,
                  document_id: str, say: Callable[[str], None]) -> list[str]:
    """Two shares outside the agreement: to a council it does not name, and a holding it does not cover."""
    actor = records_manager(provider)
    before = len(node.exchange.transfers(actor))
    reasons = [
        refused(lambda: node.exchange.share(actor, dataset_id, outsider, agreement=agreement_id),
                f"sharing the residents with {outsider} under {agreement_id}"),
        refused(lambda: node.exchange.share(actor, document_id, recipient, agreement=agreement_id),
                f"sharing a document under {agreement_id}"),
    ]
    _check(len(node.exchange.transfers(actor)) == before, "a refused share leaves nothing in the ledger")
    say(f"Shares outside {agreement_id} are refused, with the reason, and audited; nothing is sealed or sent:")
    for reason in reasons:
        say(f"  refused: {reason}")
    return reasons


def revoke_and_see_deletion(provider: Party, recipient: Party, agreement_id: str, transfer: Transfer,
                            holding_id: str, say: Callable[[str], None]) -> tuple[Transfer, str]:
    """Revoke; the recipient's node shreds its copy by itself; the provider verifies the certificate.

    Returns the provider's ledger entry, and the refusal of a share under the revoked agreement.
    """
    actor = records_manager(provider.org)
    provider.node.revoke_agreement(actor, agreement_id, "The council tax review it served has finished.")
    provider.node.send_notices(provider.org)
    say(f"{provider.name} revoked {agreement_id}; the revocation travels to {recipient.name} as a signed notice.")

    def verified() -> Transfer | None:
        found = provider.node.exchange.transfer(actor, transfer.id)
        return found if found.deletion_verified_at is not None else None

    done = wait_until(verified, f"the deletion certificate for {transfer.id} to be verified")
    theirs = records_manager(recipient.org)
    inbound = [i for i in recipient.node.exchange.inbound(theirs) if i.transfer_id == transfer.id]
    _check(len(inbound) == 1 and inbound[0].deleted_at is not None, f"{recipient.org} deleted its copy")
    say(f"{recipient.name}'s node shredded its copy {holding_id} by itself and sent {provider.name} a signed "
        "deletion certificate; nobody there acted.")
    say(f"  the reason it gives: {inbound[0].deletion_reason}")
    try:
        with memory_file("deleted") as (_fd, out):
            recipient.node.export(theirs, holding_id, out, overwrite=True)
        raise DemoFailed(f"Demo check failed: {recipient.org} can still export {holding_id}")
    except (Shredded, AgreementRefused) as exc:
        say(f"  {recipient.name} exporting it now: {exc.message}")
    deletion = done.deletion_json(provider.node.clock()) or {}
    _check(deletion.get("words") == "deleted at recipient, certificate verified",
           f"{provider.name}'s ledger shows the deletion ({deletion})")
    say(f"{provider.name}'s ledger: {transfer.id} to {recipient.org}: {deletion['words']}.")
    say(f"And a share under {agreement_id} now:")
    again = refused(lambda: provider.node.exchange.share(actor, transfer.holding_id, recipient.org,
                                                         agreement=agreement_id),
                    f"sharing under the revoked {agreement_id}")
    say(f"  refused: {again}")
    return done, again
