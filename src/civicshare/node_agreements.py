"""The Node's use cases for data sharing agreements: the template, the register.

A mixin of ``Node``; every method is a thin entry point into the agreements package, which holds the
rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from civicshare.access import Actor, Permission
from civicshare.agreements.register import AgreementRecord
from civicshare.agreements.template import render_template
from civicshare.config import check_org_id
from civicshare.errors import CivicshareError, UsageError

if TYPE_CHECKING:
    from civicshare.agreements.register import AgreementRegister
    from civicshare.clock import Clock
    from civicshare.exchange.partners import PartnerBook
    from civicshare.holdings.store import HoldingStore
    from civicshare.node import Organisation


class AgreementUseCases:
    # Set by Node.__init__.
    clock: Clock
    agreement_register: AgreementRegister
    holdings: HoldingStore
    partner_book: PartnerBook

    def organisations(self) -> list[Organisation]:
        raise NotImplementedError

    def agreement_template(self, actor: Actor, provider: str, recipient: str, *, dataset: str | None = None,
                           fields: Sequence[str] | None = None, documents: bool = False) -> str:
        """A YAML agreement between two organisations that validates as it stands, to review and create.

        When the provider is the acting organisation and holds a dataset of that name, the schema is the
        holding's columns and ``fields`` must be among them.
        """
        actor.require(Permission.AGREEMENTS_MANAGE, "draft data sharing agreements")
        check_org_id(provider)
        check_org_id(recipient)
        schema: list[str] | None = None
        if dataset is not None and provider == actor.org_id:
            held = [h for h in self.holdings.list_holdings(actor)
                    if h.kind == "dataset" and h.name == dataset and not h.shredded and h.columns]
            if held:
                schema = list(held[-1].columns or [])
            elif not fields:
                raise UsageError(f"{provider} holds no dataset named {dataset!r}; name its fields with "
                                 "--fields a,b,... or import it first.")
        names = {o.id: o.name for o in self.organisations()}
        if recipient not in names:
            try:
                names[recipient] = self.partner_book.get(actor, recipient).name
            except CivicshareError:
                pass  # not pinned, or not visible to this user: the template marks the name for review
        return render_template(provider, recipient, dataset=dataset, fields=fields, documents=documents,
                               schema=schema, today=self.clock().date(), names=names)

    def create_agreement(self, actor: Actor, text: str | bytes, *, filename: str | None = None,
                         fmt: str | None = None) -> AgreementRecord:
        """Check an agreement (YAML or JSON) and add it to the register as a draft."""
        return self.agreement_register.create(actor, text, filename=filename, fmt=fmt)

    def agreements(self, actor: Actor) -> list[AgreementRecord]:
        """The register: every version of every agreement, with warnings for reviews due."""
        return self.agreement_register.list(actor)

    def agreement(self, actor: Actor, agreement_id: str, version: int | None = None) -> AgreementRecord:
        return self.agreement_register.get(actor, agreement_id, version)

    def agreements_csv(self, actor: Actor) -> str:
        return self.agreement_register.csv(actor)
