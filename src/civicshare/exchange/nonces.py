"""The nonces of signed node-to-node requests seen recently, so a replayed request is refused.

The primary key (organisation, nonce) decides: two copies of one request racing in on two workers
both try to insert, and the database lets exactly one succeed, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.clock import iso, utc
from civicshare.db import tables as t
from civicshare.errors import Replayed
from civicshare.exchange.httpsig import NONCE_TTL

# Expired rows are swept at most this often; each sweep is one indexed DELETE.
PURGE_EVERY = timedelta(minutes=1)


class NonceBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None

    def remember(self, org_id: str, sender: str, nonce: str, expires_at: datetime, now: datetime) -> None:
        """Record ``nonce`` for ``org_id`` until ``expires_at``; Replayed if it is already recorded."""
        self._maybe_purge(now)
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(t.seen_nonces).values(org_id=org_id, nonce=nonce, sender=sender,
                                                              expires_at=expires_at))
                return
            except SAIntegrityError:
                pass
            with self.engine.begin() as conn:
                row = conn.execute(select(t.seen_nonces).where(
                    t.seen_nonces.c.org_id == org_id, t.seen_nonces.c.nonce == nonce)).first()
                if row is not None and utc(row.expires_at) <= now:
                    # An expired record not yet swept: it protects nothing any more, so it may go.
                    conn.execute(delete(t.seen_nonces).where(
                        t.seen_nonces.c.org_id == org_id, t.seen_nonces.c.nonce == nonce,
                        t.seen_nonces.c.expires_at <= now))
                    continue
            received = "" if row is None else f" at {iso(utc(row.expires_at) - NONCE_TTL)}"
            raise Replayed(f"This request was already received{received} (nonce {nonce} from {sender}); "
                           "a signed request is accepted once only.")
        raise Replayed(f"This request (nonce {nonce} from {sender}) is being received twice at the same moment.")

    def _maybe_purge(self, now: datetime) -> None:
        with self._lock:
            if self._next_purge is not None and now < self._next_purge:
                return
            self._next_purge = now + PURGE_EVERY
        self.purge(now)

    def purge(self, now: datetime) -> int:
        """Forget every nonce that expired before ``now``; returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(delete(t.seen_nonces).where(t.seen_nonces.c.expires_at < now)).rowcount or 0
