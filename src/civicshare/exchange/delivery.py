"""The delivery worker: sends queued transfers to partners, resuming where the last attempt stopped.

One attempt is: claim the transfer (state ``sending``, attempts + 1), ``PUT`` the manifest (the
answer says which parts the recipient already has), ``PUT`` only the missing parts, each read from
the sealed payload at its offset and sent a piece at a time as it is read (never whole in memory),
then ``POST`` commit and verify the receipt. Before each attempt the agreement the transfer went
under is checked again: once it has ended, been revoked or superseded, the transfer fails for good
with that reason. The ledger row is the only state, and the recipient's answers are idempotent, so a
crash at any point costs at most a repeated part. A fault on the path is retried with exponential
backoff and jitter; a refusal the protocol calls permanent fails the transfer with the reason.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog

from civicshare.errors import AgreementRefused, CivicshareError, PartnerRevoked, UnknownSender
from civicshare.exchange.answers import Refused, read_answer
from civicshare.exchange.transfers import DELIVERED, RECEIVING, Transfer

if TYPE_CHECKING:
    from civicshare.doorbell import Listener
    from civicshare.exchange.outbox import Outbox
    from civicshare.node import Node

log = structlog.get_logger("civicshare.delivery")

WORKER = "delivery"
MAX_BACKOFF = 300.0
IN_FLIGHT = 2  # parts sent at once
PIECE = 1 << 20  # bytes of a part read and written at a time
# Codes the protocol calls permanent: retrying cannot help (docs/protocol.md).
PERMANENT = frozenset({"unknown_sender", "partner_revoked", "not_for_us", "manifest_refused", "not_found",
                       "agreement_refused"})


def _payload_damaged(transfer_id: str, part: int | None = None) -> Refused:
    what = ("is shorter than its manifest says" if part is None else
            f"is damaged: part {part} no longer matches its hash in the manifest (it may not have reached the disk "
            "before the machine stopped)")
    return Refused(f"The sealed payload of {transfer_id} in the outbox {what}; share the holding again.",
                   permanent=True, code="payload_damaged")


def _require_intact(transfer: Transfer, fd: int, n: int) -> None:
    """Part ``n`` of our sealed payload still hashes to its manifest's hash; Refused (permanent) if not."""
    manifest = transfer.manifest
    digest = hashlib.sha256()
    for piece in _pieces(transfer.id, fd, n * manifest.part_size, manifest.part_length(n)):
        digest.update(piece)
    if not hmac.compare_digest(digest.hexdigest(), manifest.part_hashes[n]):
        raise _payload_damaged(transfer.id, n)


def _pieces(transfer_id: str, fd: int, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``fd`` from ``start``, in pieces of at most PIECE bytes.

    A part goes out in pieces rather than as one block: the HTTP client copies whatever the socket
    did not take in one write, so a whole 8 MiB part was copied several times over, and held in
    memory twice with two parts in flight. A piece is small enough to go out in a write or two.
    """
    end = start + length
    while start < end:
        piece = os.pread(fd, min(PIECE, end - start), start)
        if not piece:
            raise _payload_damaged(transfer_id)
        start += len(piece)
        yield piece


def _answer(response: Any, recipient: str, what: str) -> dict[str, Any]:
    """The JSON answer of a successful request; Refused (classified by the protocol) otherwise."""
    return read_answer(response, recipient, what, PERMANENT)


class _ProgressPace:
    """When to write the bytes acknowledged so far to the ledger: after every twentieth of the payload,
    at least once a second, and at the end (not after each part: a ledger write costs a transaction)."""

    STEP, EVERY = 0.05, 1.0

    def __init__(self, size: int, recorded: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._step = max(1, int(size * self.STEP))
        self._recorded = recorded
        self._monotonic = monotonic
        self._at = monotonic()

    def due(self, acknowledged: int, *, last: bool) -> bool:
        now = self._monotonic()
        if last or acknowledged - self._recorded >= self._step or now - self._at >= self.EVERY:
            self._recorded, self._at = acknowledged, now
            return True
        return False


class DeliveryWorker:
    """Delivers the due network transfers of every organisation this node hosts."""

    def __init__(self, node: Node, *, retry_base: float = 2.0, max_backoff: float = MAX_BACKOFF,
                 client_options: Mapping[str, Any] | None = None) -> None:
        self.node = node
        self.retry_base = retry_base
        self.max_backoff = max_backoff
        self.client_options = dict(client_options or {})

    @property
    def outbox(self) -> Outbox:
        return self.node.exchange.outbox

    def run(self, every: float, stop: threading.Event, bell: Listener | None = None) -> None:
        """Deliver until ``stop`` is set: at once (taking over transfers a dead worker held), then every
        ``every`` s, and whenever a new share rings ``bell`` (whoever sets ``stop`` rings it too)."""
        recover = True
        while True:
            try:
                self.run_once(recover=recover)
                recover = False
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad pass (say, a database blip)
                log.warning("delivery pass failed", error=type(exc).__name__, detail=str(exc)[:200])
            if bell is not None and bell.listening:
                bell.wait(every)
                if stop.is_set():
                    return
            elif stop.wait(every):
                return

    def run_once(self, *, recover: bool = False) -> dict[str, str]:
        """One pass over the due transfers; returns each attempted transfer's outcome."""
        due = self.outbox.due(self.node.clock(), recover=recover)
        outcomes: dict[str, str] = {}
        if not due:
            return outcomes
        client = self.node.partner_client(**self.client_options)
        try:
            for transfer in due:
                outcomes[transfer.id] = self.attempt(transfer, client)
        finally:
            client.close()
        return outcomes

    def backoff(self, attempts: int) -> float:
        """Seconds until the next attempt: doubling from ``retry_base``, capped, with equal jitter."""
        delay = min(self.retry_base * 2 ** max(attempts - 1, 0), self.max_backoff)
        fraction = int.from_bytes(self.node.rng(2), "big") / 0xFFFF
        return delay * (0.5 + 0.5 * fraction)

    def attempt(self, transfer: Transfer, client: Any) -> str:
        """One delivery attempt: ``delivered``, ``retry``, ``failed``, or ``skipped`` if another worker has it."""
        claimed = self.outbox.claim(transfer, self.node.clock())
        if claimed is None:
            return "skipped"
        progress = {"parts_sent": 0}
        outcome, details = "delivered", {}
        try:
            self._send(claimed, client, progress)
        except Refused as exc:
            details = {"code": exc.code, "error": exc.message}
            if exc.permanent:
                outcome = "failed"
                self.outbox.fail(claimed, exc.message, WORKER)
            else:
                outcome = "retry"
                self.outbox.retry_later(claimed, exc.message, self.backoff(claimed.attempts), self.node.clock())
        self.node.audit.append(claimed.org_id, WORKER, "transfer.send", claimed.id,
                               "ok" if outcome == "delivered" else "failed",
                               {"attempt": claimed.attempts, "parts_sent": progress["parts_sent"], "outcome": outcome,
                                "recipient": claimed.recipient, **details})
        return outcome

    def _send(self, transfer: Transfer, client: Any, progress: dict[str, int]) -> None:
        try:
            self.outbox.recheck(transfer)
        except AgreementRefused as exc:
            raise Refused(exc.message, permanent=True, code=exc.code) from None
        try:
            self._exchange(transfer, client, progress)
        except Refused:
            raise
        except (UnknownSender, PartnerRevoked) as exc:
            raise Refused(f"{transfer.recipient} is no longer a trusted partner: {exc.message}",
                           permanent=True, code=exc.code) from None
        except CivicshareError as exc:
            # Unreachable, a receipt that does not verify, ...: a fault on the path looks just the same.
            raise Refused(exc.message, permanent=False, code=exc.code) from None
        except FileNotFoundError:
            raise Refused(f"The sealed payload of {transfer.id} is missing from the outbox; share the holding "
                           "again.", permanent=True, code="payload_missing") from None
        except Exception as exc:  # noqa: BLE001 - recorded and retried; the traceback goes to the log
            log.warning("delivery attempt failed unexpectedly", transfer=transfer.id, error=type(exc).__name__,
                        detail=str(exc)[:200])
            raise Refused(f"civicshare met an unexpected error ({type(exc).__name__}); it will try again.",
                           permanent=False, code="internal") from None

    def _put_part(self, transfer: Transfer, client: Any, fd: int, n: int) -> None:
        """Send part ``n`` of the sealed payload, read at its offset from ``fd`` piece by piece as it goes."""
        manifest, to = transfer.manifest, transfer.recipient
        length, start = manifest.part_length(n), n * manifest.part_size
        if os.fstat(fd).st_size < start + length:
            raise _payload_damaged(transfer.id)
        # The part's hash from sealing signs its Content-Digest, so the part is not hashed again here...
        try:
            _answer(client.request(transfer.org_id, to, "PUT", f"/transfers/{transfer.id}/parts/{n}",
                                   content=_pieces(transfer.id, fd, start, length), content_length=length,
                                   content_type="application/octet-stream",
                                   content_sha256=bytes.fromhex(manifest.part_hashes[n])), to, f"part {n}")
        except Refused as exc:
            # ... unless the recipient says the bytes do not match it: damage on the path is retried, but
            # damage to our own copy would be sent again on every try, so it fails the transfer.
            if exc.code == "digest_mismatch":
                _require_intact(transfer, fd, n)
            raise
        # httpx's request and response objects form reference cycles that keep them (and the last piece
        # read) alive until the cyclic collector runs; collecting the young generations now is cheap.
        gc.collect(1)

    def _exchange(self, transfer: Transfer, client: Any, progress: dict[str, int]) -> None:
        org, to = transfer.org_id, transfer.recipient
        manifest = transfer.manifest
        payload = transfer.payload_path(self.node.layout.home)
        if payload is None:
            raise FileNotFoundError(transfer.id)
        path = f"/transfers/{transfer.id}"
        status = _answer(client.request(org, to, "PUT", path, content=transfer.manifest_text.encode("utf-8"),
                                        content_type="application/json"), to, "manifest")
        state, receipt = status.get("state"), status.get("receipt")
        if status.get("transfer") != transfer.id or state not in (RECEIVING, DELIVERED):
            raise Refused(f"{to} answered the manifest with the status of something else.", permanent=False,
                           code="bad_answer")
        if not (state == DELIVERED and isinstance(receipt, dict)):
            have = status.get("parts_received")
            if not isinstance(have, list) or not all(type(n) is int and 0 <= n < manifest.part_count for n in have):
                raise Refused(f"{to} answered the manifest with a list of parts that is not one.",
                               permanent=False, code="bad_answer")
            received = set(have)
            acknowledged = sum(manifest.part_length(n) for n in received)
            self.outbox.progress(transfer, acknowledged, self.node.clock())
            missing = [n for n in range(manifest.part_count) if n not in received]
            ledger = _ProgressPace(manifest.ciphertext.size, acknowledged)
            with payload.open("rb") as fh, ThreadPoolExecutor(IN_FLIGHT, "civicshare-part") as pool:
                # Two parts in flight: one travels while the recipient checks and stores the other.
                pending: deque[tuple[int, Future[None]]] = deque()
                failure: BaseException | None = None
                for n in missing:
                    if failure is None:
                        pending.append((n, pool.submit(self._put_part, transfer, client, fh.fileno(), n)))
                    while pending and (len(pending) >= IN_FLIGHT or failure is not None or n == missing[-1]):
                        done, future = pending.popleft()
                        try:
                            future.result()
                        except BaseException as exc:  # noqa: BLE001 - the first failure is raised below
                            failure = failure or exc
                            continue
                        acknowledged += manifest.part_length(done)
                        progress["parts_sent"] += 1
                        if ledger.due(acknowledged, last=done == missing[-1]):
                            self.outbox.progress(transfer, acknowledged, self.node.clock())
                if failure is not None:
                    raise failure
            answer = _answer(client.request(org, to, "POST", f"{path}/commit"), to, "commit")
            receipt = answer.get("receipt")
            if answer.get("transfer") != transfer.id or not isinstance(receipt, dict):
                raise Refused(f"{to} answered the commit without a receipt.", permanent=False, code="bad_answer")
        self.outbox.delivered(transfer, receipt, WORKER)
