"""How often the delivery worker writes its progress to the ledger."""

from __future__ import annotations

from civicshare.exchange.delivery import _ProgressPace


def test_progress_is_written_every_twentieth_of_the_payload_and_at_the_end() -> None:
    size, part = 1000 * 64, 64
    pace = _ProgressPace(size, 0)
    written = [n for n in range(1, 1001) if pace.due(n * part, last=n == 1000)]
    assert len(written) == 20
    assert written[-1] == 1000
    assert all(b - a == 50 for a, b in zip(written, written[1:], strict=False))


def test_a_resumed_transfer_counts_from_what_was_acknowledged_before() -> None:
    pace = _ProgressPace(1000, 900)
    assert not pace.due(920, last=False)
    assert pace.due(950, last=False)
    assert pace.due(960, last=True)


def test_few_large_parts_are_each_written() -> None:
    pace = _ProgressPace(4 * 100, 0)
    assert [pace.due(n * 100, last=n == 4) for n in range(1, 5)] == [True] * 4


def test_a_slow_transfer_is_written_at_least_once_a_second() -> None:
    now = [0.0]
    pace = _ProgressPace(10**9, 0, monotonic=lambda: now[0])
    now[0] = 0.5
    assert not pace.due(1000, last=False)
    now[0] = 1.2
    assert pace.due(2000, last=False)
    assert not pace.due(3000, last=False)
