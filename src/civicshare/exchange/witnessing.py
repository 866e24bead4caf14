"""Exchanging audit checkpoints with partners, and gathering what they hold of our log.

``civicshare serve`` sends every partner a fresh checkpoint of the organisation's log now and then
and keeps the one the partner sends back (``exchange``). ``audit verify --witnesses`` asks every
partner for the checkpoints of our log it kept and checks the local log against all of them
(``gather``): a history rewritten after a partner saw a checkpoint no longer matches it, however
carefully the operator recomputed the tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from civicshare.access import Actor
from civicshare.audit.witness import MAX_NOTE_BYTES, MAX_RETURNED
from civicshare.errors import CivicshareError, InvalidInput, Unreachable

if TYPE_CHECKING:
    from civicshare.node import Node

VERSION = 1
CHECKPOINTS_PATH = "/checkpoints"
WITNESSED_PATH = "/witnessed"
MAX_ANSWER_BYTES = MAX_RETURNED * (MAX_NOTE_BYTES + 64)


@dataclass
class PartnerWitness:
    """What one partner answered: the checkpoints of our log it holds, or why it could not be asked."""

    partner: str
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"partner": self.partner, "checkpoints": len(self.notes), "error": self.error}


def _own_note(node: Node, org_id: str) -> str:
    """A checkpoint of the organisation's log as it stands (reusing the last one if nothing changed)."""
    return node.audit_checkpoint(Actor.operator(org_id, "witness")).note


def _json_answer(response: Any, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        raise Unreachable(f"{what} was refused: {message}")
    if len(response.content) > MAX_ANSWER_BYTES:
        raise InvalidInput(f"{what}: the answer is larger than {MAX_ANSWER_BYTES:,} bytes.")
    try:
        body = json.loads(response.content)
    except ValueError:
        raise InvalidInput(f"{what}: the answer is not JSON.") from None
    if not isinstance(body, dict) or body.get("version") != VERSION:
        raise InvalidInput(f"{what}: the answer is not a version {VERSION} answer.")
    return body


def parse_checkpoint_request(body: bytes) -> str:
    """The note in a partner's ``POST /checkpoints`` body; InvalidInput if the body is not that shape."""
    if len(body) > MAX_NOTE_BYTES + 1024:
        raise InvalidInput("A checkpoint exchange carries one note of at most 16 KiB.")
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("A checkpoint exchange is a JSON object.") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or set(data) != {"version", "note"} \
            or not isinstance(data["note"], str):
        raise InvalidInput('A checkpoint exchange is {"version": 1, "note": "<signed checkpoint>"}.')
    return data["note"]


def answer_exchange(node: Node, org_id: str, sender: str, note: str) -> dict[str, Any]:
    """Keep the authenticated ``sender``'s checkpoint and answer with one of our own log."""
    partner = node.trust.partner(org_id, sender)
    node.witnesses.keep(org_id, sender, note, partner.audit_verifier_key, via="exchange")
    return {"version": VERSION, "note": _own_note(node, org_id)}


def answer_witnessed(node: Node, org_id: str, sender: str) -> dict[str, Any]:
    """The checkpoints of the authenticated ``sender``'s log that ``org_id`` keeps, newest first."""
    return {"version": VERSION, "checkpoints": [w.note for w in node.witnesses.held(org_id, sender)]}


def exchange(node: Node, org_id: str, **client_options: Any) -> list[PartnerWitness]:
    """Swap checkpoints with every trusted partner that has an endpoint; never raises for one partner.

    ``client_options`` go to the partner client (a test passes its transport)."""
    results: list[PartnerWitness] = []
    partners = [p for p in node.trust.partners(org_id) if p.endpoint]
    if not partners:
        return results
    note = _own_note(node, org_id)
    body = json.dumps({"version": VERSION, "note": note}).encode("utf-8")
    client = node.partner_client(**{"timeout": 20.0, **client_options})
    try:
        for partner in partners:
            result = PartnerWitness(partner.partner_id)
            try:
                response = client.request(org_id, partner.partner_id, "POST", CHECKPOINTS_PATH, content=body,
                                          content_type="application/json")
                answer = _json_answer(response, f"{partner.partner_id}'s checkpoint exchange")
                theirs = answer.get("note")
                if not isinstance(theirs, str):
                    raise InvalidInput(f"{partner.partner_id} answered without a checkpoint note.")
                node.witnesses.keep(org_id, partner.partner_id, theirs, partner.audit_verifier_key,
                                    via="exchange")
                result.notes.append(theirs)
            except CivicshareError as exc:
                result.error = exc.message
            results.append(result)
    finally:
        client.close()
    return results


def gather(node: Node, org_id: str, **client_options: Any) -> list[PartnerWitness]:
    """Ask every trusted partner with an endpoint for the checkpoints of our log it keeps."""
    results: list[PartnerWitness] = []
    client = node.partner_client(**{"timeout": 30.0, **client_options})
    try:
        for partner in node.trust.partners(org_id):
            result = PartnerWitness(partner.partner_id)
            if not partner.endpoint:
                result.error = "it has no endpoint on its card, so it cannot be asked"
                results.append(result)
                continue
            try:
                response = client.request(org_id, partner.partner_id, "GET", WITNESSED_PATH)
                answer = _json_answer(response, f"{partner.partner_id}'s witnessed checkpoints")
                notes = answer.get("checkpoints")
                if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
                    raise InvalidInput(f"{partner.partner_id} answered without a list of checkpoint notes.")
                result.notes = notes[:MAX_RETURNED]
            except CivicshareError as exc:
                result.error = exc.message
            results.append(result)
    finally:
        client.close()
    return results
