"""Whom an organisation trusts, and with which keys: pinned partners, then trusted directories.

Revocation in any trusted directory wins over everything: an organisation a directory has revoked is
refused even if it is also pinned by hand, because a revocation is how a federation says a key is
lost or an organisation gone. Otherwise a pinned card is used first, then a member card of a trusted
directory (while it is valid).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from civicshare.clock import Clock, iso, utc
from civicshare.db import tables as t
from civicshare.errors import PartnerRevoked, UnknownSender
from civicshare.exchange.card import CLOCK_SKEW, Card, card_time, parse_key_text
from civicshare.exchange.directory import Directory, parse_directory
from civicshare.exchange.partners import PINNED

# Parsed editions kept in memory; old editions drop out as new serials arrive.
CACHE_SIZE = 256


@dataclass(frozen=True)
class TrustedPartner:
    partner_id: str
    name: str
    endpoint: str | None
    signing_key: bytes
    age_recipient: str
    audit_verifier_key: str
    source: str  # "pinned" or "directory:NAME"


def _from_card(card: Card, source: str) -> TrustedPartner:
    return TrustedPartner(card.org_id, card.name, card.endpoint, card.signing_key, card.age_recipient,
                          card.audit_verifier_key, source)


class Trust:
    """Resolves a partner id to its keys for one organisation; thread-safe, with a small parse cache."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._cache: dict[tuple[str, str, int], Directory] = {}
        self._lock = threading.Lock()

    def _directories(self, org_id: str) -> list[Directory]:
        """The current edition of every directory ``org_id`` trusts, by name."""
        c = t.trusted_directories.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(c.name, c.serial, c.operator_key).where(c.org_id == org_id)
                                .order_by(c.name)).all()
            found = []
            for row in rows:
                key = (org_id, row.name, row.serial)
                with self._lock:
                    directory = self._cache.get(key)
                if directory is None:
                    document = conn.execute(select(c.document).where(
                        c.org_id == org_id, c.name == row.name, c.serial == row.serial)).scalar()
                    if document is None:
                        continue  # replaced by a newer edition between the two reads; next call sees it
                    directory = parse_directory(document, pinned_key=parse_key_text(row.operator_key))
                    with self._lock:
                        if len(self._cache) >= CACHE_SIZE:
                            self._cache.clear()
                        self._cache[key] = directory
                found.append(directory)
        return found

    def _pinned(self, org_id: str, partner_id: str | None = None) -> list[Any]:
        c = t.partners.c
        query = select(t.partners).where(c.org_id == org_id)
        if partner_id is not None:
            query = query.where(c.partner_id == partner_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(c.partner_id)))

    @staticmethod
    def _revoked(directories: list[Directory], partner_id: str) -> PartnerRevoked | None:
        for directory in directories:
            revocation = directory.revocations.get(partner_id)
            if revocation is not None:
                reason = f": {revocation.reason}" if revocation.reason else ""
                return PartnerRevoked(f"{partner_id} was revoked by the directory {directory.name} on "
                                      f"{card_time(revocation.revoked)}{reason}.")
        return None

    @staticmethod
    def _valid(card: Card, now: datetime) -> bool:
        return card.issued <= now + CLOCK_SKEW and now < card.valid_until

    def partner(self, org_id: str, partner_id: str) -> TrustedPartner:
        """The keys ``org_id`` trusts for ``partner_id``; PartnerRevoked or UnknownSender otherwise."""
        now = self.clock()
        directories = self._directories(org_id)
        revoked = self._revoked(directories, partner_id)
        if revoked is not None:
            raise revoked
        pinned = self._pinned(org_id, partner_id)
        expired = ""
        if pinned:
            row = pinned[0]
            if row.revoked_at is not None:
                raise PartnerRevoked(f"{partner_id} ({row.name}) was revoked by {org_id} on "
                                     f"{iso(utc(row.revoked_at))}.")
            if now < utc(row.valid_until):
                return TrustedPartner(row.partner_id, row.name, row.endpoint, parse_key_text(row.signing_key),
                                      row.age_recipient, row.audit_verifier_key, row.source or PINNED)
            expired = f"The card {org_id} pinned for {partner_id} expired on {iso(utc(row.valid_until))}, and "
        for directory in directories:
            card = directory.members.get(partner_id)
            if card is not None and self._valid(card, now):
                return _from_card(card, f"directory:{directory.name}")
        if expired:
            raise UnknownSender(expired + "no directory it trusts lists a valid card; ask them for a new card.")
        raise UnknownSender(f"No organisation called {partner_id} is pinned or listed in a directory {org_id} "
                            "trusts.")

    def partners(self, org_id: str) -> list[TrustedPartner]:
        """Every partner ``org_id`` can exchange with now, pinned first, by id; never itself."""
        now = self.clock()
        directories = self._directories(org_id)
        usable: dict[str, TrustedPartner] = {}
        # A partner this organisation revoked by hand stays refused, whatever a directory lists.
        refused = {org_id}
        for row in self._pinned(org_id):
            if row.revoked_at is not None:
                refused.add(row.partner_id)
            elif now < utc(row.valid_until) and not self._revoked(directories, row.partner_id):
                usable[row.partner_id] = TrustedPartner(
                    row.partner_id, row.name, row.endpoint, parse_key_text(row.signing_key), row.age_recipient,
                    row.audit_verifier_key, row.source or PINNED)
        for directory in directories:
            for partner_id, card in directory.members.items():
                if (partner_id not in usable and partner_id not in refused and self._valid(card, now)
                        and not self._revoked(directories, partner_id)):
                    usable[partner_id] = _from_card(card, f"directory:{directory.name}")
        return [usable[p] for p in sorted(usable)]
