"""The Node's use cases between organisations: cards, partners, federation directories, sharing.

A mixin of ``Node`` (kept in its own module so neither passes a readable length); every method is a
thin entry point into the exchange package, which holds the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicshare.access import Actor
from civicshare.exchange.card import CARD_VALIDITY, Card, key_text, make_card
from civicshare.exchange.directory import Directory, OperatedDirectory, Revocation
from civicshare.exchange.federation import TrustedDirectory
from civicshare.exchange.partners import Partner
from civicshare.exchange.transfers import InboundTransfer, Transfer

# Seconds a share waits for the partner's sealing key before it seals to the key on the partner's card.
SEALING_KEY_WAIT = 15.0

if TYPE_CHECKING:
    from civicshare.audit.log import AuditLog
    from civicshare.clock import Clock, Rng
    from civicshare.config import NodeConfig
    from civicshare.crypto import Keystore
    from civicshare.exchange.client import PartnerClient
    from civicshare.exchange.directory import DirectoryOperator
    from civicshare.exchange.federation import Federation
    from civicshare.exchange.partners import PartnerBook
    from civicshare.exchange.preview import SharePreview
    from civicshare.exchange.transfers import Exchange
    from civicshare.exchange.trust import Trust
    from civicshare.keys import KeyRegister
    from civicshare.node import Organisation


class ExchangeUseCases:
    # Set by Node.__init__.
    config: NodeConfig
    clock: Clock
    rng: Rng
    audit: AuditLog
    keys: KeyRegister
    partner_book: PartnerBook
    trust: Trust
    federation: Federation
    directory: DirectoryOperator
    exchange: Exchange

    def keystore(self, org_id: str) -> Keystore:
        raise NotImplementedError

    def organisation(self, org_id: str) -> Organisation:
        raise NotImplementedError

    # Cards and partners ------------------------------------------------------------------------

    def card(self, actor: Actor) -> dict[str, Any]:
        """The organisation's signed card, valid for a year from now. Any user may hand it out."""
        with self.audit.event(actor, "card.issue", actor.org_id) as event:
            org = self.organisation(actor.org_id)
            key_id, public = self.keys.signing_key(org.id)
            _receiving, recipient = self.keys.age_recipient(org.id)
            base = (self.config.url or "").rstrip("/")
            now = self.clock().replace(microsecond=0)
            card = Card(org.id, org.name, f"{base}/orgs/{org.id}" if base else None, public, recipient,
                        self.audit.verifier_key(org.id, public), now, now + CARD_VALIDITY)
            store = self.keystore(org.id)
            document = make_card(card, key_id, lambda data: store.sign(key_id, data))
            event.update(signing_key=key_text(public), valid_until=document["body"]["valid_until"])
            return document

    def add_partner(self, actor: Actor, card_text: str | bytes, *, replace: bool = False) -> Partner:
        """Verify a partner's card and pin it; a different signing key needs ``replace=True``."""
        return self.partner_book.add(actor, card_text, replace=replace)

    def partners(self, actor: Actor) -> list[Partner]:
        return self.partner_book.list(actor)

    def partner(self, actor: Actor, org_id: str) -> Partner:
        return self.partner_book.get(actor, org_id)

    def partner_client(self, **kwargs: Any) -> PartnerClient:
        """A client for signed requests to partners' nodes, signing with each organisation's key."""
        from civicshare.exchange.client import PartnerClient  # httpx is slow to import; load it when used

        def signer_for(org_id: str) -> Callable[[bytes], bytes]:
            key_id, _public = self.keys.signing_key(org_id)
            store = self.keystore(org_id)
            return lambda data: store.sign(key_id, data)

        return PartnerClient(self.trust, signer_for, self.clock, self.rng, **kwargs)

    # Federation directories --------------------------------------------------------------------

    def directory_init(self, actor: Actor, name: str) -> OperatedDirectory:
        """Start operating a federation directory from this node (its operator key is made here)."""
        return self.directory.init(actor, name)

    def directory_add(self, actor: Actor, card_text: str | bytes) -> Card:
        return self.directory.add(actor, card_text)

    def directory_revoke(self, actor: Actor, org_id: str, reason: str = "") -> Revocation:
        return self.directory.revoke(actor, org_id, reason)

    def directory_publish(self, actor: Actor) -> Directory:
        return self.directory.publish(actor)

    def use_directory(self, actor: Actor, source: str, *,
                      operator_key: str | None = None) -> tuple[TrustedDirectory, str]:
        """Trust a directory (URL or file), pinning its operator key on first use."""
        return self.federation.use(actor, source, operator_key=operator_key)

    def trusted_directories(self, actor: Actor) -> list[TrustedDirectory]:
        return self.federation.list(actor)

    def trusted_directory(self, actor: Actor, name: str) -> tuple[TrustedDirectory, Directory]:
        return self.federation.get(actor, name)

    def refresh_directories(self) -> list[str]:
        """Fetch every trusted directory again; returns ``org/name`` of those with a newer edition."""
        return self.federation.refresh()

    # Sharing holdings --------------------------------------------------------------------------

    def share(self, actor: Actor, holding_id: str, to: str, *, agreement: str | None = None,
              out: Path | None = None, ask_partner: bool = False) -> Transfer:
        """Seal a holding for partner ``to`` and put it in the outbox (``out``: an offline package).

        ``ask_partner``: a document going over the network is sealed to a key the partner makes for it
        (it then keeps the ciphertext as it arrives), if the partner answers within SEALING_KEY_WAIT
        seconds; otherwise to the receiving key on its card.
        """
        if not ask_partner or out is not None:
            return self.exchange.share(actor, holding_id, to, agreement=agreement, out=out)
        with self.partner_client(timeout=SEALING_KEY_WAIT) as partners:
            return self.exchange.share(actor, holding_id, to, agreement=agreement, partners=partners)

    def preview_share(self, actor: Actor, holding_id: str, to: str, agreement: str | None) -> SharePreview:
        """What a share would send now (fields, rows, size, classification), or why it would be refused."""
        from civicshare.exchange.preview import preview_share

        return preview_share(self, actor, holding_id, to, agreement)  # type: ignore[arg-type]

    def transfers(self, actor: Actor) -> list[Transfer]:
        """The ledger of transfers this organisation sent."""
        return self.exchange.transfers(actor)

    def transfer(self, actor: Actor, transfer_id: str) -> Transfer:
        return self.exchange.transfer(actor, transfer_id)

    def inbox(self, actor: Actor) -> list[InboundTransfer]:
        """Transfers that arrived, or are arriving, for this organisation."""
        return self.exchange.inbound(actor)

    def receive(self, actor: Actor, path: Path, *, receipt_out: Path | None = None) -> dict[str, Any]:
        """Import an offline package (writing its receipt), or take a receipt carried back."""
        return self.exchange.receive(actor, path, receipt_out=receipt_out)
