"""Pinned partners: the organisations whose cards an organisation has checked and chosen to trust.

Pinning is trust on first use made deliberate: an administrator adds a partner's card after checking
it with the partner (by phone, in a meeting, through a channel an attacker does not control). From
then on the partner's signing key is fixed: a card with another key is refused unless the change is
confirmed (``replace``), because an unexpected key change is exactly what an impostor looks like.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import Actor, Permission
from civicshare.audit.log import AuditLog
from civicshare.canonical import canonical_json, parse_json
from civicshare.clock import Clock, iso, utc
from civicshare.db import tables as t
from civicshare.errors import Conflict, NotFound
from civicshare.exchange.card import Card, key_text, parse_card, parse_key_text

PINNED = "pinned"


@dataclass(frozen=True)
class Partner:
    org_id: str
    partner_id: str
    name: str
    endpoint: str | None
    signing_key: bytes
    age_recipient: str
    audit_verifier_key: str
    card: str
    issued: datetime
    valid_until: datetime
    added_at: datetime
    added_by: str
    source: str
    revoked_at: datetime | None

    def to_json(self, *, with_card: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "organisation": self.org_id, "partner": self.partner_id, "name": self.name,
            "endpoint": self.endpoint, "signing_key": key_text(self.signing_key),
            "age_recipient": self.age_recipient, "audit_verifier_key": self.audit_verifier_key,
            "issued": iso(self.issued), "valid_until": iso(self.valid_until), "added": iso(self.added_at),
            "added_by": self.added_by, "source": self.source, "revoked": iso(self.revoked_at),
        }
        if with_card:
            data["card"] = parse_json(self.card)
        return data


def _partner(row: Any) -> Partner:
    return Partner(row.org_id, row.partner_id, row.name, row.endpoint, parse_key_text(row.signing_key),
                   row.age_recipient, row.audit_verifier_key, row.card, utc(row.issued), utc(row.valid_until),
                   utc(row.added_at), row.added_by, row.source,
                   None if row.revoked_at is None else utc(row.revoked_at))


def _same_key(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class PartnerBook:
    """Every organisation's pinned partners. Each query is scoped to the acting organisation."""

    def __init__(self, engine: Engine, audit: AuditLog, clock: Clock) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def add(self, actor: Actor, card_text: str | bytes, *, replace: bool = False) -> Partner:
        """Verify a card and pin it: a new partner, a fresher card, or (with ``replace``) a new key."""
        with self.audit.event(actor, "partner.add", None) as event:
            actor.require(Permission.PARTNERS_MANAGE, "pin partners")
            now = self.clock()
            card, document = parse_card(card_text, now=now)
            event.update(object=card.org_id, name=card.name, signing_key=key_text(card.signing_key))
            if card.org_id == actor.org_id:
                raise Conflict(f"This is the card of {actor.org_id} itself; an organisation does not pin "
                               "itself as a partner.")
            values = self._values(actor, card, canonical_json(document).decode("utf-8"), now)
            with self.engine.begin() as conn:
                existing = conn.execute(select(t.partners).where(
                    t.partners.c.org_id == actor.org_id, t.partners.c.partner_id == card.org_id)
                    .with_for_update()).first()
                if existing is None:
                    event["change"] = "new"
                    try:
                        conn.execute(insert(t.partners).values(org_id=actor.org_id, partner_id=card.org_id,
                                                               **values))
                    except SAIntegrityError:
                        raise Conflict(f"{card.org_id} was pinned by someone else at the same moment; "
                                       "look at it with 'partner show' and try again.") from None
                else:
                    event["change"] = self._change(existing, card, replace)
                    if event["change"] == "key-replaced":
                        event["previous_signing_key"] = existing.signing_key
                    conn.execute(update(t.partners).where(
                        t.partners.c.org_id == actor.org_id, t.partners.c.partner_id == card.org_id)
                        .values(**values))
            return self._get(actor.org_id, card.org_id)

    def _change(self, existing: Any, card: Card, replace: bool) -> str:
        """What pinning ``card`` over the existing row means; refuses what must not happen silently."""
        if not _same_key(parse_key_text(existing.signing_key), card.signing_key):
            if not replace:
                raise Conflict(
                    f"{card.org_id} is already pinned with signing key {existing.signing_key}, and this card "
                    f"has {key_text(card.signing_key)}. Check the change with {existing.name} through a channel "
                    "you trust, then add the card again with --replace.")
            return "key-replaced"
        if card.issued < utc(existing.issued):
            # An older card could bring back an endpoint or age recipient the partner has moved away from.
            raise Conflict(f"This card of {card.org_id} was issued on {iso(card.issued)}, before the one "
                           f"pinned ({iso(existing.issued)}); ask them for their current card.")
        return "refreshed"

    @staticmethod
    def _values(actor: Actor, card: Card, document: str, now: datetime) -> dict[str, Any]:
        return {
            "name": card.name, "endpoint": card.endpoint, "signing_key": key_text(card.signing_key),
            "age_recipient": card.age_recipient, "audit_verifier_key": card.audit_verifier_key,
            "card": document, "issued": card.issued, "valid_until": card.valid_until, "added_at": now,
            "added_by": actor.name, "source": PINNED, "revoked_at": None,
        }

    def list(self, actor: Actor) -> list[Partner]:
        actor.require(Permission.PARTNERS_READ, "see partners")
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.partners).where(t.partners.c.org_id == actor.org_id)
                                .order_by(t.partners.c.partner_id))
            return [_partner(r) for r in rows]

    def get(self, actor: Actor, partner_id: str) -> Partner:
        actor.require(Permission.PARTNERS_READ, "see partners")
        return self._get(actor.org_id, partner_id)

    def _get(self, org_id: str, partner_id: str) -> Partner:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.partners).where(
                t.partners.c.org_id == org_id, t.partners.c.partner_id == partner_id)).first()
        if row is None:
            raise NotFound(f"{partner_id!r} is not a partner of {org_id}; pin their card with 'partner add'.")
        return _partner(row)
