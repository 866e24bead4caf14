"""Signed requests to partners' nodes: the one way this node talks to another.

The URL is the partner's endpoint (from the card this organisation trusts) plus the route; the
request is signed by the sending organisation's key through the keystore. Network faults become
``Unreachable`` with a plain reason; HTTP error answers are returned for the caller to read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx

from civicshare.clock import Clock, Rng
from civicshare.errors import Unreachable, UsageError
from civicshare.exchange.httpsig import Signer, new_nonce, sign_request
from civicshare.exchange.trust import Trust


class PartnerClient:
    def __init__(self, trust: Trust, signer_for: Callable[[str], Signer], clock: Clock, rng: Rng, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        self.trust = trust
        self.signer_for = signer_for
        self.clock = clock
        self.rng = rng
        self.timeout = timeout
        # No redirects: a signature covers one URL, and a partner's node answers at its endpoint.
        self._client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)

    def request(self, sender: str, partner_id: str, method: str, path: str, *,
                content: bytes | Iterable[bytes] = b"", content_type: str | None = None,
                content_sha256: bytes | None = None, content_length: int | None = None) -> httpx.Response:
        """Send a signed request from ``sender`` to ``partner_id``'s endpoint + ``path``.

        ``content_sha256`` is the SHA-256 of ``content`` when the caller already has it. ``content``
        may be an iterable of pieces, sent as they come, if ``content_length`` and ``content_sha256``
        say how long the whole body is and what it hashes to (the body is then never joined in memory).

        UnknownSender / PartnerRevoked if ``sender`` does not trust the partner; UsageError if the
        partner has no endpoint (use an offline package); Unreachable on a network fault.
        """
        partner = self.trust.partner(sender, partner_id)
        if not partner.endpoint:
            raise UsageError(f"{partner.name} ({partner_id}) has no endpoint on its card, so it cannot be reached "
                             "over the network; send an offline package instead.")
        if not path.startswith("/"):
            raise UsageError(f"A partner route starts with '/', not {path!r}.")
        url = partner.endpoint.rstrip("/") + path
        headers = {"Content-Type": content_type} if content_type else {}
        if not isinstance(content, bytes):
            if content_length is None or content_sha256 is None:
                raise UsageError("A body sent in pieces needs its length and SHA-256 up front.")
            # With the length given, httpx sends the pieces as they come, not chunk-encoded.
            headers["Content-Length"] = str(content_length)
        request = self._client.build_request(method, url, content=content, headers=headers)
        sign_request(request, sender=sender, sign=self.signer_for(sender), now=self.clock(),
                     nonce=new_nonce(self.rng), body_sha256=content_sha256)
        try:
            return self._client.send(request)
        except httpx.TimeoutException:
            raise Unreachable(f"{partner.name} ({partner_id}) at {partner.endpoint} did not answer within "
                              f"{self.timeout:g} seconds.") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise Unreachable(f"{partner.name} ({partner_id}) at {partner.endpoint} could not be reached: "
                              f"{reason}.") from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
