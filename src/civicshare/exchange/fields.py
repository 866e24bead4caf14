"""Field checks shared by the signed documents of a transfer (manifest, receipt): times, sizes,
digests, identifiers, and reading a document from outside within a size limit.

Each check takes the raw JSON value and returns it parsed, or raises InvalidInput (UsageError for a
caller's mistake) with a message that names no field: the ``Checker`` adds the field path, so one
pass reports every problem of a document at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyrage

from civicshare.canonical import canonical_json, parse_json
from civicshare.config import check_org_id
from civicshare.errors import InvalidInput, Problem, TooLarge, UsageError
from civicshare.exchange.signed import document_body

MAX_SIZE = 2**63 - 1
MAX_PROBLEMS = 50
SHA256_RE = re.compile(r"[0-9a-f]{64}")
TRANSFER_ID_RE = re.compile(r"t_[a-z0-9]{1,38}")
HOLDING_ID_RE = re.compile(r"h_[a-z0-9]{1,38}")
TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def doc_time(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, with Z: the one spelling manifests and receipts use."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Digest:
    """The size in bytes and lower-case hex SHA-256 of a byte string."""

    size: int
    sha256: str

    def to_body(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256}


class Checker:
    """Collects problems, each with the path of its field, so a refusal names every fault at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.total = 0

    def add(self, message: str, field: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(message, field=field))

    def field(self, body: dict[str, Any], name: str, parse: Callable[[Any], Any], prefix: str = "") -> Any:
        """``parse(body[name])``, or None with the problem noted (a missing field is noted by ``fields``)."""
        if name not in body:
            return None
        try:
            return parse(body.get(name))
        except (InvalidInput, UsageError) as exc:
            self.add(exc.message, prefix + name)
            return None

    def fields(self, body: dict[str, Any], expected: tuple[str, ...], prefix: str, what: str) -> None:
        for name in expected:
            if name not in body:
                self.add("is missing", prefix + name)
        for name in sorted(set(body) - set(expected)):
            self.add(f"is not a field of a version 1 {what}", prefix + str(name))

    def digest(self, value: object, path: str, extra: tuple[str, ...]) -> Digest:
        if not isinstance(value, dict):
            self.add("must be an object with size and sha256", path)
            return Digest(0, "")
        self.fields(value, ("size", "sha256", *extra), path + ".", path)
        size = self.field(value, "size", byte_count, path + ".")
        digest = self.field(value, "sha256", sha256_hex, path + ".")
        return Digest(size, digest)

    def raise_if_any(self, message: str) -> None:
        if self.problems:
            more = self.total - len(self.problems)
            if more > 0:
                self.problems.append(Problem(f"and {more} more problems"))
            raise InvalidInput(message, problems=self.problems)


def transfer_id(value: object) -> str:
    if not isinstance(value, str) or not TRANSFER_ID_RE.fullmatch(value):
        raise InvalidInput("must be a transfer id such as t_4kq3...")
    return value


def holding_id(value: object) -> str:
    if not isinstance(value, str) or not HOLDING_ID_RE.fullmatch(value):
        raise InvalidInput("must be a holding id such as h_4kq3...")
    return value


def org_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput("must be an organisation id")
    try:
        return check_org_id(value)
    except UsageError as exc:
        raise InvalidInput(exc.message) from None


def parse_time(value: object) -> datetime:
    if not isinstance(value, str) or not TIME_RE.fullmatch(value):
        raise InvalidInput("must be a UTC time such as 2026-11-01T09:30:00Z")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{value!r} is not a real date and time") from None


def byte_count(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise InvalidInput("must be a whole number, zero or more")
    return value


def sha256_hex(value: object) -> str:
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value):
        raise InvalidInput("must be a SHA-256 as 64 lower-case hex digits")
    return value


def text_line(value: object, limit: int, *, strip: bool = True) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be text that is not blank")
    if len(value) > limit or CONTROL_RE.search(value) or (strip and value != value.strip()):
        raise InvalidInput(f"must be one line of at most {limit} characters"
                           + (", without spaces at either end" if strip else ""))
    return value


def age_recipient_text(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("age1"):
        raise InvalidInput("must be an age X25519 recipient (age1...)")
    try:
        pyrage.x25519.Recipient.from_str(value)
    except Exception:  # noqa: BLE001 - pyrage raises its own and ValueError; any failure means unusable
        raise InvalidInput("is not a valid age X25519 recipient") from None
    return value


def read_document(data: str | bytes | dict[str, Any], kind: str, limit: int) -> dict[str, Any]:
    """A signed document of ``kind`` from text, bytes or an already parsed object; size-limited, strict."""
    if isinstance(data, dict):
        raw: str | bytes = canonical_json(data)
    elif isinstance(data, str | bytes):
        raw = data
    else:
        raise UsageError(f"A {kind} is read from JSON text, bytes or an object.")
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "replace"))
    if size > limit:
        raise TooLarge(f"This {kind} is {size:,} bytes; a {kind} is never more than {limit:,}.")
    document = data if isinstance(data, dict) else parse_json(raw)
    document_body(kind, document)
    assert isinstance(document, dict)
    return document

