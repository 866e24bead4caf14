"""The agreement guard: every later use of a received holding checks its agreement again.

A holding that arrived from a partner (an inbox row names it) is usable only while the agreement it
arrived under is active: expiry or revocation stops viewing and exporting it at once, not only at
the next transfer. Sharing it onward also needs the agreement to allow onward sharing (and, as for
every share, an agreement of its own). A holding this organisation made itself is its own to use.

The inbox calls ``check_arrival`` for the recipient's own check of what a manifest says arrives.
The holding store calls ``check_access`` inside the use's own audit event, so each refusal is logged
there (holding.view, holding.export, transfer.create: refused, with the rule and the reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from civicshare.access import Actor
from civicshare.agreements.enforce import USES, HoldingFacts, check_arrival, check_use
from civicshare.db import tables as t
from civicshare.errors import UsageError
from civicshare.exchange.transfers import DELIVERED

if TYPE_CHECKING:
    from civicshare.agreements.register import AgreementRecord
    from civicshare.exchange.manifest import Manifest
    from civicshare.node import Node


class AgreementGuard:
    def __init__(self, node: Node) -> None:
        self.node = node

    def received_under(self, org_id: str, holding_id: str) -> tuple[bool, str | None, AgreementRecord | None]:
        """Whether the holding arrived from a partner; the agreement id it arrived under and its record."""
        c = t.inbound.c
        with self.node.db.engine.connect() as conn:
            row = conn.execute(select(c.agreement_id, c.agreement_hash).where(
                c.org_id == org_id, c.holding_id == holding_id, c.state == DELIVERED)).first()
        if row is None:
            return False, None, None
        record = (self.node.agreement_register.by_hash(org_id, row.agreement_hash)
                  if row.agreement_hash is not None else None)
        return True, row.agreement_id, record

    def check_access(self, actor: Actor, holding_id: str, use: str) -> None:
        """Refuse (AgreementRefused) a ``view``, ``export`` or onward ``share`` the agreement does not allow."""
        if use not in USES:
            raise UsageError(f"Unknown use {use!r} of a holding: {', '.join(USES)}.")
        received, agreement_id, record = self.received_under(actor.org_id, holding_id)
        if received:
            check_use(record, use, agreement_id=agreement_id)

    def check_arrival(self, org_id: str, manifest: Manifest) -> AgreementRecord:
        """``org_id``'s own check of the agreement a manifest names (AgreementRefused if not met)."""
        ref, info = manifest.agreement, manifest.holding
        facts = HoldingFacts(info.kind, info.name, info.media_type,
                             tuple(info.column_names) if info.columns is not None else None, info.classification,
                             info.quality_score)
        record = self.node.agreement_register.by_hash(org_id, ref.sha256)
        return check_arrival(record, ref.id, ref.version, manifest.sender, org_id, facts)
