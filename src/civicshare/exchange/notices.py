"""The notice outbox: signed documents on their way to partners, delivered reliably.

Agreement proposals, signatures and revocations (and deletion certificates) are written here in the
same database transaction as the change they announce, so a change is never made without its notice
nor a notice sent for a change that did not happen. ``send_due`` POSTs each due notice to the
partner's route as a signed request; a 2xx version 1 answer marks it sent, a fault on the path backs
it off exponentially (capped at five minutes), and a refusal the protocol calls permanent marks it
failed with the partner's reason. Receivers are idempotent, so a notice sent twice does no harm.

A notice to an organisation hosted on this same node that this organisation does not trust over the
exchange is handed to the local handler for its kind (the same core code the route calls).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, insert, or_, select, update

from civicshare.audit.entry import FAILED, OK
from civicshare.audit.log import AuditLog
from civicshare.canonical import canonical_json
from civicshare.clock import Clock, Rng, iso, utc
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, PartnerRevoked, UnknownSender, UsageError
from civicshare.exchange.answers import Refused, read_answer
from civicshare.exchange.delivery import PERMANENT as TRANSFER_PERMANENT

if TYPE_CHECKING:
    from civicshare.exchange.client import PartnerClient

log = structlog.get_logger("civicshare.notices")

PENDING, SENT, FAILED_STATE = "pending", "sent", "failed"
WORKER = "node:notices"
MAX_BACKOFF = 300.0
# While one sender holds a notice, others leave it alone for this long.
LEASE = timedelta(seconds=120)
# Refusals retrying cannot help: the transfer protocol's, and a document refused for what it says.
PERMANENT = TRANSFER_PERMANENT | frozenset({"invalid_input", "security", "conflict", "too_large", "usage",
                                            "forbidden", "integrity"})

# Notices made in the same instant by one process keep their order: ids sort by this counter first.
_SEQUENCE = itertools.count()

# A local handler: (recipient org, sender org, route path, document) -> the answer, as the route gives it.
LocalHandler = Callable[[str, str, str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Notice:
    id: str
    org_id: str
    recipient: str
    kind: str
    subject: str
    path: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "organisation": self.org_id, "recipient": self.recipient, "kind": self.kind,
                "subject": self.subject, "state": self.state, "attempts": self.attempts,
                "last_error": self.last_error, "next_attempt": iso(self.next_attempt_at),
                "created": iso(self.created_at), "sent": iso(self.sent_at)}

    def words(self) -> str:
        """One line for a person: what is waiting to reach whom, and why it has not yet."""
        what = f"{self.kind} of {self.subject} to {self.recipient}"
        if self.state == SENT:
            return f"{what}: delivered {iso(self.sent_at)}"
        if self.state == FAILED_STATE:
            return f"{what}: failed: {self.last_error}"
        times = "once" if self.attempts == 1 else f"{self.attempts} times"
        tried = f" (tried {times}; last: {self.last_error})" if self.attempts else ""
        return f"{what}: waiting{tried}"


def _notice(row: Any) -> Notice:
    return Notice(row.id, row.org_id, row.recipient, row.kind, row.subject, row.path, row.state, row.attempts,
                  row.last_error, utc(row.next_attempt_at) if row.next_attempt_at else None, utc(row.created_at),
                  utc(row.sent_at) if row.sent_at else None)


class _Outcome(Refused):
    """How one attempt to send a notice ended, when it did not end with the partner's yes."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message, permanent=permanent, code="notice")


class NoticeOutbox:
    """Every hosted organisation's notices waiting to reach partners."""

    def __init__(self, engine: Engine, audit: AuditLog, clock: Clock, rng: Rng, *,
                 hosted: Callable[[str], bool], trusts: Callable[[str, str], bool],
                 retry_base: float = 2.0, max_backoff: float = MAX_BACKOFF) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self.rng = rng
        self.hosted = hosted
        self.trusts = trusts
        self.retry_base = retry_base
        self.max_backoff = max_backoff
        self.local: dict[str, LocalHandler] = {}
        # Set to send sooner than the next round (serve's notices thread waits on it).
        self.wake = threading.Event()

    def queue(self, conn: Connection, org_id: str, recipient: str, kind: str, subject: str, path: str,
              document: dict[str, Any]) -> str:
        """Add a notice inside the caller's transaction; returns its id. ``path`` follows the partner's
        endpoint, e.g. ``/agreements``."""
        if not path.startswith("/"):
            raise UsageError(f"A partner route starts with '/', not {path!r}.")
        notice_id = f"n_{next(_SEQUENCE) % 10**10:010d}{base64.b32encode(self.rng(10)).decode('ascii').lower()}"
        conn.execute(insert(t.notices).values(
            id=notice_id, org_id=org_id, recipient=recipient, kind=kind, subject=subject[:100], path=path,
            document=canonical_json(document).decode("utf-8"), state=PENDING, attempts=0, last_error=None,
            next_attempt_at=None, created_at=self.clock(), sent_at=None))
        self.wake.set()
        return notice_id

    def list(self, org_id: str, *, subject: str | None = None, pending_only: bool = False) -> list[Notice]:
        """The organisation's notices, oldest first (those still waiting or failed, if ``pending_only``)."""
        c = t.notices.c
        query = select(t.notices).where(c.org_id == org_id)
        if subject is not None:
            query = query.where(c.subject == subject)
        if pending_only:
            query = query.where(c.state != SENT)
        with self.engine.connect() as conn:
            return [_notice(r) for r in conn.execute(query.order_by(c.created_at, c.id))]

    def has_due(self, org_id: str | None = None) -> bool:
        """Whether any notice is due now (cheap: serve asks every few seconds)."""
        c = t.notices.c
        query = select(c.id).where(c.state == PENDING, or_(c.next_attempt_at.is_(None),
                                                           c.next_attempt_at <= self.clock()))
        if org_id is not None:
            query = query.where(c.org_id == org_id)
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try: doubling from ``retry_base``, capped, with equal jitter."""
        delay = min(self.retry_base * 2 ** max(attempts - 1, 0), self.max_backoff)
        fraction = int.from_bytes(self.rng(2), "big") / 0xFFFF
        return delay * (0.5 + 0.5 * fraction)

    # Sending -----------------------------------------------------------------------------------

    def send_due(self, client: PartnerClient | None, *, org_id: str | None = None) -> int:
        """Send every due notice (of ``org_id``, or of every organisation); returns how many arrived.

        ``client`` may be None when every due notice is for an organisation on this node.
        """
        now = self.clock()
        c = t.notices.c
        query = select(t.notices).where(c.state == PENDING, or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
        if org_id is not None:
            query = query.where(c.org_id == org_id)
        with self.engine.connect() as conn:
            due = [_notice(r) for r in conn.execute(query.order_by(c.created_at, c.id))]
        sent = 0
        for notice in due:
            if not self._claim(notice, now):
                continue
            sent += self._attempt(notice, client)
        return sent

    def _claim(self, notice: Notice, now: datetime) -> bool:
        c = t.notices.c
        with self.engine.begin() as conn:
            claimed = conn.execute(update(t.notices).where(
                c.id == notice.id, c.state == PENDING,
                or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)).values(
                attempts=c.attempts + 1, next_attempt_at=now + LEASE)).rowcount
        return bool(claimed == 1)

    def _document(self, notice: Notice) -> dict[str, Any]:
        with self.engine.connect() as conn:
            text = conn.execute(select(t.notices.c.document).where(t.notices.c.id == notice.id)).scalar_one()
        document: dict[str, Any] = json.loads(text)
        return document

    def _attempt(self, notice: Notice, client: PartnerClient | None) -> int:
        what = f"{notice.kind} of {notice.subject}"
        try:
            document = self._document(notice)
            handler = self.local.get(notice.kind)
            if handler is not None and self.hosted(notice.recipient) and not self.trusts(notice.org_id,
                                                                                        notice.recipient):
                try:
                    handler(notice.recipient, notice.org_id, notice.path, document)
                except CivicshareError as exc:
                    raise _Outcome(f"{notice.recipient} refused the {what} ({exc.code}): {exc.message.rstrip('.')}.",
                                   permanent=exc.code in PERMANENT) from None
            else:
                if client is None:
                    raise _Outcome(f"{notice.recipient} is not on this node and no partner client was given.",
                                   permanent=False)
                try:
                    response = client.request(notice.org_id, notice.recipient, "POST", notice.path,
                                              content=canonical_json(document), content_type="application/json")
                except (UnknownSender, PartnerRevoked) as exc:
                    raise _Outcome(f"{notice.recipient} is not a trusted partner of {notice.org_id}: {exc.message}",
                                   permanent=True) from None
                except UsageError as exc:
                    raise _Outcome(exc.message, permanent=True) from None
                except CivicshareError as exc:
                    raise _Outcome(exc.message, permanent=False) from None
                read_answer(response, notice.recipient, what, PERMANENT)
        except Refused as outcome:
            self._fault(notice, outcome)
            return 0
        except Exception as exc:  # noqa: BLE001 - recorded and retried; one bad notice must not stop the rest
            log.warning("notice attempt failed unexpectedly", notice=notice.id, error=type(exc).__name__,
                        detail=str(exc)[:200])
            self._fault(notice, _Outcome(f"civicshare met an unexpected error ({type(exc).__name__}); it will "
                                         "try again.", permanent=False))
            return 0
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(update(t.notices).where(t.notices.c.id == notice.id).values(
                state=SENT, sent_at=now, next_attempt_at=None, last_error=None))
        self.audit.append(notice.org_id, WORKER, "notice.sent", notice.id, OK, {
            "kind": notice.kind, "subject": notice.subject, "recipient": notice.recipient,
            "attempt": notice.attempts + 1})
        return 1

    def _fault(self, notice: Notice, outcome: Refused) -> None:
        now = self.clock()
        attempts = notice.attempts + 1
        values: dict[str, Any] = {"last_error": outcome.message[:2000]}
        if outcome.permanent:
            values.update(state=FAILED_STATE, next_attempt_at=None)
        else:
            values["next_attempt_at"] = now + timedelta(seconds=self.backoff(attempts))
        with self.engine.begin() as conn:
            conn.execute(update(t.notices).where(t.notices.c.id == notice.id).values(**values))
        if outcome.permanent:
            self.audit.append(notice.org_id, WORKER, "notice.failed", notice.id, FAILED, {
                "kind": notice.kind, "subject": notice.subject, "recipient": notice.recipient,
                "attempt": attempts, "reason": outcome.message[:500]})
