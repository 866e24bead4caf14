"""The gate every node-to-node request passes: signature, trust, then the nonce.

A request is accepted only if its RFC 9421 signature verifies with the signing key the recipient
trusts for the claimed sender (pinned, or listed in a trusted directory and not revoked anywhere),
it was signed within the last few minutes, and its nonce has not been seen. Every refusal is an
``exchange.refused`` entry in the recipient organisation's audit log, so records managers can see
who knocked and why they were turned away.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from civicshare.audit.entry import REFUSED
from civicshare.audit.log import AuditLog
from civicshare.clock import Clock
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, NotFound
from civicshare.exchange.httpsig import NONCE_TTL, SignedRequest, claimed_sender, verify_request
from civicshare.exchange.nonces import NonceBook
from civicshare.exchange.trust import Trust

GATE_ACTOR = "node:exchange-gate"


class Gate:
    def __init__(self, engine: Engine, audit: AuditLog, trust: Trust, nonces: NonceBook, clock: Clock) -> None:
        self.engine = engine
        self.audit = audit
        self.trust = trust
        self.nonces = nonces
        self.clock = clock

    def check(self, recipient: str, *, method: str, url: str, headers: Iterable[tuple[str, str]],
              body: bytes) -> SignedRequest:
        """Verify a request addressed to ``recipient`` (hosted here); returns who sent it.

        NotFound if no such organisation is hosted on this node. SignatureRefused, DigestMismatch,
        UnknownSender, PartnerRevoked or Replayed otherwise, each logged in the recipient's log.
        """
        self._hosted(recipient)
        lines = list(headers)
        now = self.clock()
        try:
            signed = verify_request(method=method, url=url, headers=lines, body=body, now=now,
                                    public_key_for=lambda sender: self.trust.partner(recipient, sender).signing_key)
            self.nonces.remember(recipient, signed.sender, signed.nonce, now + NONCE_TTL, now)
        except CivicshareError as exc:
            self.refused(recipient, exc, method=method, url=url, headers=lines)
            raise
        return signed

    def refused(self, recipient: str, exc: CivicshareError, *, method: str, url: str,
                headers: Iterable[tuple[str, str]]) -> None:
        """Log a request to ``recipient`` turned away (here, or before the gate: an oversized body)."""
        self._hosted(recipient)
        sender = claimed_sender(list(headers))
        self.audit.append(recipient, GATE_ACTOR, "exchange.refused", sender, REFUSED, {
            "sender": sender, "code": exc.code, "reason": exc.message, "method": method[:20],
            "path": urlsplit(url).path[:300]})

    def _hosted(self, recipient: str) -> None:
        with self.engine.connect() as conn:
            hosted = conn.execute(select(t.organisations.c.id).where(t.organisations.c.id == recipient)).first()
        if hosted is None:
            raise NotFound(f"No organisation {recipient!r} is hosted at this node.")
