"""Injected time and randomness, so expiry, retention and rotation are tested deterministically."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
Rng = Callable[[int], bytes]


def system_clock() -> datetime:
    return datetime.now(UTC)


def system_rng(n: int) -> bytes:
    return os.urandom(n)


def new_id(prefix: str, rng: Rng) -> str:
    """A short random identifier such as ``h_4kq3...``: 80 random bits in lower-case base32."""
    return prefix + "_" + base64.b32encode(rng(10)).decode("ascii").lower()


def utc(moment: datetime) -> datetime:
    """The moment as an aware UTC datetime; SQLite hands stored times back without a zone, meaning UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with seconds, the one way times are shown to users."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
