"""Injected randomness: every caller passes (or defaults) an ``rng(n) -> n bytes`` function.

Tests pass a deterministic source; production uses ``os.urandom``. Every draw goes through
``random_bytes`` so a broken source (wrong length, wrong type) is caught rather than silently
producing short keys or nonces.
"""

from __future__ import annotations

from collections.abc import Callable

from civicshare.errors import UsageError

Rng = Callable[[int], bytes]


def random_bytes(rng: Rng, n: int) -> bytes:
    """Exactly ``n`` bytes from ``rng``; raises UsageError if the source misbehaves."""
    data = rng(n)
    if not isinstance(data, bytes) or len(data) != n:
        raise UsageError(f"The random source must return {n} bytes when asked for {n}.")
    return data
