"""Parts handed in memory from the requests that brought them to the early opening reading them.

An early opening (``Inbox.open_early``) decrypts a transfer while its parts still arrive. A part it
will read soon need not be written to the staging area and read back: the request that brought it,
once the part passed its checks, hands the bytes over here instead. At most ``ahead`` parts wait in
memory, and all transfers together at most ``BUDGET_BYTES``; a request whose part is further ahead
waits a little for room (so a sender cannot outrun the opening by much), and a part that cannot be
taken is staged on disk as before. Nothing is taken until the opening holds the transfer's commit
lock (``begin``), so whoever holds that lock reads every acknowledged part from one place.

A part handed over lives only as long as the opening: if the opening ends without storing the
holding (the next part did not come in time, the node stopped), those parts are gone, the transfer
status no longer lists them, and the sender sends them again. The sender keeps its sealed payload
until it holds a verified receipt, so nothing is lost, only sent twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

AHEAD = 4  # parts of one transfer held in memory at most (with 8 MiB parts, 32 MiB)
OFFER_WAIT = 5.0  # seconds a request waits for room before its part is staged on disk instead
BUDGET_BYTES = 64 * 1024 * 1024  # held in memory for all transfers together; beyond it, parts are staged


class Budget:
    """Bytes that all the handoffs of a node may hold at once, so many transfers at a time cannot
    fill its memory: a part that does not fit is staged on disk instead."""

    def __init__(self, limit: int = BUDGET_BYTES) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > self._limit:
                return False
            self.held += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size


class Handoff:
    """The parts of one transfer on their way, in memory, to the opening reading them in order."""

    def __init__(self, ahead: int = AHEAD, budget: Budget | None = None) -> None:
        self._cond = threading.Condition()
        self._ahead = ahead
        self._budget = budget or Budget()
        self._held: dict[int, bytes] = {}
        self._accepted: set[int] = set()
        self._waiting: set[int] = set()  # parts whose requests wait for room
        self._next = 0
        self._begun = False  # the opening holds the commit lock
        self._closed = False

    def begin(self) -> None:
        """The opening holds the transfer's commit lock: from now on it reads what it is handed.

        Until then nothing is taken: a commit that took the lock first must find every acknowledged
        part on the disk, not in the memory of an opening that has not started reading.
        """
        with self._cond:
            self._begun = True
            self._cond.notify_all()

    @property
    def accepted(self) -> frozenset[int]:
        """Every part taken in memory while the opening lives (read already or not); empty once it ended."""
        with self._cond:
            return frozenset(self._accepted)

    def offer(self, n: int, data: bytes, *, wait: float | None = None,
              staged: Callable[[int], bool] = lambda n: False) -> bool:
        """Hand part ``n`` (already checked) to the opening; False if it was not taken: stage it instead.

        An opening that has not begun (its thread waits for the lock) is waited for, up to ``wait``
        seconds (``OFFER_WAIT`` unless given).
        A part within ``ahead`` of the one the opening reads next is taken at once. One further ahead
        waits up to ``wait`` seconds for room, but only while every part before it is here, waiting
        too, or ``staged`` on disk (the opening is busy, not waiting for a part that has not come).
        """
        deadline = time.monotonic() + (OFFER_WAIT if wait is None else wait)
        with self._cond:
            try:
                while True:
                    if self._closed:
                        return False
                    if not self._begun:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        self._cond.wait(remaining)
                        continue
                    if n in self._accepted:
                        return True  # a repeat of a part taken before
                    if n < self._next:
                        return False  # the opening read this part from the staging area already
                    if n < self._next + self._ahead:
                        if not self._budget.take(len(data)):
                            return False  # the node holds enough in memory already
                        self._held[n] = data
                        self._accepted.add(n)
                        self._cond.notify_all()
                        return True
                    busy = all(p in self._accepted or p in self._waiting or staged(p) for p in range(self._next, n))
                    remaining = deadline - time.monotonic()
                    if not busy or remaining <= 0:
                        return False
                    self._waiting.add(n)
                    self._cond.wait(remaining)
            finally:
                self._waiting.discard(n)

    def take(self, n: int, timeout: float) -> bytes | None:
        """Part ``n`` if it is handed over within ``timeout`` seconds; None means read it from staging.

        The opening calls this for each part in order; it also tells waiting requests where it is.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if n != self._next:
                self._next = n
                self._cond.notify_all()
            while n not in self._held and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            data = self._held.pop(n, None)
            if data is not None:
                self._budget.give_back(len(data))
                self._next = n + 1
                self._cond.notify_all()
            return data

    def close(self) -> None:
        """The opening ended: drop what it holds, refuse further offers and wake everyone waiting."""
        with self._cond:
            self._closed = True
            self._budget.give_back(sum(len(data) for data in self._held.values()))
            self._held.clear()
            self._accepted.clear()
            self._cond.notify_all()
