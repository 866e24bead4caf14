"""Parts handed in memory to an early opening: the window, the waiting, and what is left when it ends."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.exchange.handoff import AHEAD, Budget, Handoff


def _begun(ahead: int = AHEAD, budget: Budget | None = None) -> Handoff:
    """A handoff whose opening holds the lock and reads."""
    handoff = Handoff(ahead=ahead, budget=budget)
    handoff.begin()
    return handoff

def test_parts_within_the_window_are_taken_and_read_in_order() -> None:
    handoff = _begun(ahead=3)
    assert handoff.offer(1, b"one", wait=0) and handoff.offer(0, b"zero", wait=0) and handoff.offer(2, b"two", wait=0)
    assert handoff.accepted == {0, 1, 2}
    assert [handoff.take(n, 0) for n in range(3)] == [b"zero", b"one", b"two"]
    # Read already: still counted as received while the opening lives; offered again, simply acknowledged.
    assert handoff.accepted == {0, 1, 2}
    assert handoff.offer(2, b"two", wait=0)


def test_a_part_beyond_a_gap_is_not_waited_for_but_staged() -> None:
    handoff = _begun(ahead=2)
    assert handoff.offer(1, b"one", wait=0)
    started = time.monotonic()
    # Part 0 has not come: the opening is waiting for it, not busy, so part 2 goes to the disk at once.
    assert not handoff.offer(2, b"two", wait=5)
    assert time.monotonic() - started < 1
    assert handoff.take(0, 0.01) is None  # not handed over: the opening reads it from staging
    assert handoff.take(1, 0) == b"one"


def test_a_part_ahead_of_a_busy_opening_waits_for_room() -> None:
    handoff = _begun(ahead=2)
    assert handoff.offer(0, b"zero", wait=0) and handoff.offer(1, b"one", wait=0)
    taken: list[bool] = []
    waiting = threading.Thread(target=lambda: taken.append(handoff.offer(2, b"two", wait=10)))
    waiting.start()
    time.sleep(0.1)
    assert taken == []  # no room yet: parts 0 and 1 wait to be read
    assert handoff.take(0, 0) == b"zero"  # room for part 2
    waiting.join(5)
    assert taken == [True]
    assert [handoff.take(1, 0), handoff.take(2, 0)] == [b"one", b"two"]


def test_a_part_that_waits_too_long_for_room_is_staged_instead() -> None:
    handoff = _begun(ahead=1)
    assert handoff.offer(0, b"zero", wait=0)
    started = time.monotonic()
    assert not handoff.offer(1, b"one", wait=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert handoff.accepted == {0}


def test_a_part_read_from_staging_already_is_not_taken_again() -> None:
    handoff = _begun()
    assert handoff.take(0, 0) is None  # read from the disk
    assert handoff.take(1, 0) is None
    assert not handoff.offer(0, b"zero", wait=0)


def test_closing_drops_everything_wakes_the_waiting_and_refuses_more() -> None:
    handoff = _begun(ahead=1)
    assert handoff.offer(0, b"zero", wait=0)
    results: list[bool] = []
    waiting = threading.Thread(target=lambda: results.append(handoff.offer(1, b"one", wait=30)))
    waiting.start()
    time.sleep(0.05)
    handoff.close()
    waiting.join(5)
    assert results == [False]
    assert handoff.accepted == frozenset()  # the status no longer lists them: the sender sends them again
    assert handoff.take(0, 0) is None
    assert not handoff.offer(2, b"two", wait=0)


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(list(range(12))), ahead=st.integers(1, 5))
def test_whatever_the_arrival_order_the_opening_reads_every_part_once_in_order(order: list[int], ahead: int) -> None:
    """Requests offer parts concurrently in any order; what is not taken is 'staged' in a dict the
    reader falls back on, as the opening falls back on the staging area."""
    handoff = _begun(ahead=ahead)
    staged: dict[int, bytes] = {}
    lock = threading.Lock()

    def arrive(n: int) -> None:
        data = f"part {n}".encode()
        if not handoff.offer(n, data, wait=0.5):
            with lock:
                staged[n] = data

    requests = [threading.Thread(target=arrive, args=(n,)) for n in order]
    for request in requests:
        request.start()
    read = []
    deadline = time.monotonic() + 30
    for n in range(12):
        while True:
            data = handoff.take(n, 0.005)
            if data is None:
                with lock:
                    data = staged.get(n)
            if data is not None:
                read.append(data)
                break
            assert time.monotonic() < deadline, f"part {n} never came"
    for request in requests:
        request.join(5)
    assert read == [f"part {n}".encode() for n in range(12)]


def test_all_transfers_together_hold_no_more_than_the_budget() -> None:
    budget = Budget(limit=10)
    first, second = _begun(budget=budget), _begun(budget=budget)
    assert first.offer(0, b"123456", wait=0)
    assert not second.offer(0, b"12345", wait=0)  # would pass the budget: staged on disk instead
    assert second.offer(0, b"1234", wait=0)
    assert budget.held == 10
    assert first.take(0, 0) == b"123456"
    assert budget.held == 4
    second.close()  # what an opening held when it ended is given back
    assert budget.held == 0


def test_nothing_is_taken_before_the_opening_holds_the_lock() -> None:
    handoff = Handoff(ahead=2)
    started = time.monotonic()
    # A commit that takes the lock first must find the part on the disk: not taken, after waiting a little.
    assert not handoff.offer(0, b"zero", wait=0.2)
    assert 0.15 < time.monotonic() - started < 2
    assert handoff.accepted == frozenset()
    # A request waiting when the opening begins hands its part over.
    request = threading.Thread(target=lambda: results.append(handoff.offer(0, b"zero", wait=5)))
    results: list[bool] = []
    request.start()
    time.sleep(0.1)
    handoff.begin()
    request.join(5)
    assert results == [True] and handoff.take(0, 0) == b"zero"
