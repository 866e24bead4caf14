"""The share preview: exactly what would leave if a holding were shared now, or why it would be refused.

A person about to share sees, before anything is sealed: the fields and rows of a dataset that would
leave (the agreed ones it has, in its order) and those kept back, or the whole document, its
classification and size, and the quality score the agreement is checked against. The preview runs the
same checks as ``Outbox.share``, in the same order: the partner is trusted and reachable, the agreement
allows this share (``Outbox.agreed``: civicshare.agreements.enforce), and the holding may leave this
organisation (an onward share of a received holding needs its agreement's consent; a shredded holding
cannot). A check that is not met is the preview's ``refusal``, in the words the share would refuse with.

Nothing is sealed, sent or recorded. A caller's own mistakes still raise: a missing permission
(PermissionDenied), a holding that is not there (NotFound), a share with itself (UsageError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from civicshare.access import Actor, Permission
from civicshare.clock import iso
from civicshare.errors import AgreementRefused, CivicshareError, PartnerRevoked, Shredded, UnknownSender, UsageError
from civicshare.holdings.store import SHARE, Holding

if TYPE_CHECKING:
    from civicshare.node import Node


@dataclass(frozen=True)
class Refusal:
    """Why the share would be refused: the agreement's rule not met (None for other refusals) and why."""

    code: str
    message: str
    rule: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, exc: CivicshareError) -> Refusal:
        if isinstance(exc, AgreementRefused):
            return cls(exc.code, exc.message, exc.rule, exc.reason)
        return cls(exc.code, exc.message)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "rule": self.rule, "reason": self.reason}


@dataclass(frozen=True)
class SharePreview:
    """What a share of ``holding`` to ``to`` under ``agreement_id`` would send, and whether it may."""

    holding: Holding
    to: str
    partner_name: str | None
    agreement_id: str | None
    agreement_version: int | None
    # The fields that would leave, in the holding's order (None: a document, sent whole), and those kept back.
    fields: tuple[str, ...] | None
    withheld: tuple[str, ...]
    rows: int | None
    classification: str
    # A document's size is exact; a dataset's is that of the file it was imported from (all its fields).
    size: int
    size_exact: bool
    quality_score: float | None
    refusal: Refusal | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def kind(self) -> str:
        return self.holding.kind

    def to_json(self) -> dict[str, Any]:
        h = self.holding
        return {
            "holding": {"id": h.id, "name": h.name, "kind": h.kind, "media_type": h.media_type,
                        "columns": h.columns, "created": iso(h.created_at)},
            "to": self.to, "partner_name": self.partner_name,
            "agreement": None if self.agreement_id is None else {"id": self.agreement_id,
                                                                 "version": self.agreement_version},
            "allowed": self.allowed, "fields": None if self.fields is None else list(self.fields),
            "withheld": list(self.withheld), "rows": self.rows, "classification": self.classification,
            "size": self.size, "size_exact": self.size_exact, "quality_score": self.quality_score,
            "refusal": None if self.refusal is None else self.refusal.to_json(),
        }


def preview_share(node: Node, actor: Actor, holding_id: str, to: str, agreement: str | None) -> SharePreview:
    """Run the checks of a share of ``holding_id`` to ``to`` under ``agreement`` and say what would leave."""
    actor.require(Permission.TRANSFERS_SHARE, "share holdings with partners")
    if to == actor.org_id:
        raise UsageError(f"{to} is this organisation; a holding is shared with a partner.")
    holding = node.holdings.lookup(actor, holding_id)
    partner_name: str | None = None
    requested = agreement.strip() if agreement is not None and agreement.strip() else None
    version: int | None = None
    columns: list[str] | None = None
    score = holding.quality_score
    refusal: Refusal | None = None
    try:
        try:
            partner = node.trust.partner(actor.org_id, to)
        except (UnknownSender, PartnerRevoked) as exc:
            raise _Stop(exc) from None
        partner_name = partner.name
        if not partner.endpoint:
            raise _Stop(UsageError(f"{to}'s card names no endpoint, so it cannot be reached over the network; "
                                   "share to a file and carry the package to them."))
        try:
            record, columns, quality = node.exchange.outbox.agreed(actor, holding_id, to, agreement)
        except (AgreementRefused, Shredded) as exc:
            raise _Stop(exc) from None
        requested, version = record.id, record.version
        if quality is not None:
            score = float(quality["score"])
        # What ``seal_holding`` checks next: the right to let a holding leave, a received one's agreement,
        # and that its data key still exists.
        actor.require(Permission.HOLDINGS_EXPORT, "share holdings")
        if node.holdings.check_access is not None:
            try:
                node.holdings.check_access(actor, holding_id, SHARE)
            except AgreementRefused as exc:
                raise _Stop(exc) from None
        if holding.shredded:
            raise _Stop(Shredded(f"Holding {holding.id} ({holding.name}) was shredded on "
                                 f"{iso(holding.shredded_at)} by {holding.shredded_by}; its contents can no "
                                 "longer be read by anyone."))
    except _Stop as stop:
        refusal = Refusal.of(stop.error)
        columns = None
    fields: tuple[str, ...] | None
    withheld: tuple[str, ...]
    if holding.kind != "dataset":
        fields, withheld = None, ()
    else:
        fields = tuple(columns or ())
        withheld = tuple(c for c in holding.columns or () if c not in fields)
    return SharePreview(
        holding, to, partner_name, requested, version, fields, withheld,
        holding.rows if holding.kind == "dataset" else None, holding.classification, holding.size,
        holding.kind != "dataset", score, refusal)


class _Stop(Exception):
    """Carries the first refusal out of the checks, so the rest of the preview is still built."""

    def __init__(self, error: CivicshareError) -> None:
        super().__init__(error.message)
        self.error = error
