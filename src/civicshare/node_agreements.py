"""The Node's use cases for data sharing agreements: the template, the register, the lifecycle.

A mixin of ``Node``; every method is a thin entry point into the agreements package, which holds the
rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from civicshare.access import ROLE_WORDS, Actor, Permission, Role
from civicshare.agreements.register import AgreementRecord
from civicshare.agreements.template import render_template
from civicshare.audit.entry import REFUSED
from civicshare.config import check_org_id
from civicshare.errors import CivicshareError, PermissionDenied, UsageError
from civicshare.exchange.notices import Notice

if TYPE_CHECKING:
    from civicshare.agreements.lifecycle import AgreementLifecycle
    from civicshare.agreements.register import AgreementRegister
    from civicshare.audit.log import AuditLog
    from civicshare.clock import Clock
    from civicshare.exchange.client import PartnerClient
    from civicshare.exchange.notices import NoticeOutbox
    from civicshare.exchange.partners import PartnerBook
    from civicshare.exchange.trust import Trust
    from civicshare.holdings.store import HoldingStore
    from civicshare.node import Organisation
    from civicshare.users import Users


class AgreementUseCases:
    # Set by Node.__init__.
    clock: Clock
    agreement_register: AgreementRegister
    holdings: HoldingStore
    partner_book: PartnerBook
    audit: AuditLog
    trust: Trust
    users: Users
    notices: NoticeOutbox
    agreement_lifecycle: AgreementLifecycle

    def organisations(self) -> list[Organisation]:
        raise NotImplementedError

    def partner_client(self, **kwargs: Any) -> PartnerClient:
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

    # The lifecycle -----------------------------------------------------------------------------

    def propose_agreement(self, actor: Actor, agreement_id: str, version: int | None = None) -> AgreementRecord:
        """Send a draft to every other party (draft -> proposed)."""
        return self.agreement_lifecycle.propose(actor, agreement_id, version)

    def sign_agreement(self, actor: Actor, agreement_id: str, version: int | None = None, *,
                       operator: str | None = None) -> AgreementRecord:
        """Sign a proposed agreement for the actor's organisation; only a data protection officer may."""
        return self.agreement_lifecycle.sign(actor, agreement_id, version, operator=operator)

    def revoke_agreement(self, actor: Actor, agreement_id: str, reason: str,
                         version: int | None = None) -> AgreementRecord:
        """End an agreement for every party, with the reason."""
        return self.agreement_lifecycle.revoke(actor, agreement_id, reason, version)

    def agreement_notices(self, actor: Actor, agreement_id: str | None = None) -> list[Notice]:
        """The lifecycle notices of the organisation not yet delivered (of one agreement, if given)."""
        actor.require(Permission.AGREEMENTS_READ, "see data sharing agreements")
        waiting = self.notices.list(actor.org_id, pending_only=True)
        if agreement_id is None:
            return waiting
        return [n for n in waiting if n.subject.split(" ")[0] == agreement_id]

    def dpo_actor(self, org_id: str, name: str, *, operator: str) -> Actor:
        """The data protection officer ``name`` of ``org_id``, for whom the node's operator acts at the shell.

        PermissionDenied (audited, naming both) when there is no such user or the user is not a dpo.
        """
        user = next((u for u in self.users.list(org_id) if u.name == name), None)
        if user is not None and user.role == Role.DPO:
            return Actor(org_id, user.name, Role.DPO)
        why = (f"{name} is {ROLE_WORDS[user.role]}, not a data protection officer" if user is not None
               else f"{org_id} has no user called {name!r}")
        exc = PermissionDenied(f"{why}; only a user with the dpo role signs agreements for {org_id} (add one with "
                               "'civicshare user add NAME --role dpo').")
        self.audit.append(org_id, operator, "agreement.sign", None, REFUSED, {
            "as": name, "code": exc.code, "reason": exc.message})
        raise exc

    def hosts(self, org_id: str) -> bool:
        """Whether ``org_id`` is an organisation on this node."""
        return any(o.id == org_id for o in self.organisations())

    def reaches(self, org_id: str, partner_id: str) -> bool:
        """Whether ``org_id`` trusts ``partner_id`` and can reach its endpoint over the exchange."""
        try:
            return bool(self.trust.partner(org_id, partner_id).endpoint)
        except CivicshareError:
            return False

    def send_notices(self, org_id: str | None = None, **client_options: Any) -> int:
        """Send the due notices now (of ``org_id``, or all); returns how many arrived. Never raises for a
        partner that cannot be reached: those stay queued for ``serve``."""
        if not self.notices.has_due(org_id):
            return 0
        client = self.partner_client(**{"timeout": 20.0, **client_options})
        try:
            return self.notices.send_due(client, org_id=org_id)
        finally:
            client.close()
