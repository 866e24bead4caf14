"""Trusting federation directories: fetch, verify, pin the operator key, accept only newer editions.

An organisation trusts a directory by its source (a URL, or a file carried by hand). The first
edition pins the operator's key, as a partner's card pins its signing key: a person checks the
fingerprint with the operator. From then on an edition is accepted only if it is signed by that key,
has the same name and a higher serial; so nobody can swap the directory, replay an older edition to
lift a revocation, or show two different editions under one serial.
"""

from __future__ import annotations

import builtins
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

if TYPE_CHECKING:
    import httpx

from civicshare.access import Actor, Permission
from civicshare.audit.log import AuditLog
from civicshare.canonical import canonical_json
from civicshare.clock import Clock, iso, utc
from civicshare.db import tables as t
from civicshare.errors import CivicshareError, Conflict, NotFound, SecurityError, TooLarge, Unreachable, UsageError
from civicshare.exchange.card import CLOCK_SKEW, card_time, key_text, parse_key_text
from civicshare.exchange.directory import MAX_DIRECTORY_BYTES, Directory, fingerprint, parse_directory

log = structlog.get_logger("civicshare.federation")

FETCH_TIMEOUT = 10.0
REFRESH_ACTOR = "node:directory-refresh"
MAX_SOURCE = 500


@dataclass(frozen=True)
class TrustedDirectory:
    org_id: str
    name: str
    source: str
    operator_key: bytes
    serial: int
    issued: datetime
    fetched_at: datetime
    last_error: str | None
    added_by: str

    def to_json(self) -> dict[str, Any]:
        return {"organisation": self.org_id, "name": self.name, "source": self.source,
                "operator_key": key_text(self.operator_key), "fingerprint": fingerprint(self.operator_key),
                "serial": self.serial, "issued": iso(self.issued), "fetched": iso(self.fetched_at),
                "last_error": self.last_error, "added_by": self.added_by}


def _trusted(row: Any) -> TrustedDirectory:
    return TrustedDirectory(row.org_id, row.name, row.source, parse_key_text(row.operator_key), row.serial,
                            utc(row.issued), utc(row.fetched_at), row.last_error, row.added_by)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(source: str, *, timeout: float = FETCH_TIMEOUT, transport: httpx.BaseTransport | None = None) -> bytes:
    import httpx  # slow to import; only needed when a directory is fetched
    """The bytes of a directory at a URL or in a file; Unreachable or UsageError with a plain reason."""
    if is_url(source):
        try:
            with httpx.Client(timeout=timeout, transport=transport) as client, client.stream("GET", source) as reply:
                if reply.status_code != 200:
                    raise Unreachable(f"The directory at {source} answered HTTP {reply.status_code}, not the "
                                      "directory.")
                data = bytearray()
                for chunk in reply.iter_bytes():
                    data += chunk
                    if len(data) > MAX_DIRECTORY_BYTES:
                        raise TooLarge(f"The directory at {source} is larger than {MAX_DIRECTORY_BYTES:,} bytes.")
                return bytes(data)
        except httpx.TimeoutException:
            raise Unreachable(f"The directory at {source} did not answer within {timeout:g} seconds.") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"The directory at {source} could not be fetched: {exc or type(exc).__name__}.") \
                from None
    try:
        with open(source, "rb") as fh:
            return fh.read(MAX_DIRECTORY_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"There is no directory file {source}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read the directory file {source}: {exc.strerror}.") from None


class Federation:
    """The directories each organisation trusts. Queries are scoped to one organisation."""

    def __init__(self, engine: Engine, audit: AuditLog, clock: Clock, *, timeout: float = FETCH_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self.timeout = timeout
        self.transport = transport

    def _fetch(self, source: str) -> bytes:
        return fetch(source, timeout=self.timeout, transport=self.transport)

    def use(self, actor: Actor, source: str, *, operator_key: str | None = None) -> tuple[TrustedDirectory, str]:
        """Trust the directory at ``source`` (URL or file), or accept a newer edition of it.

        Returns the stored directory and what changed: ``new`` (operator key pinned now: show its
        fingerprint), ``newer`` or ``unchanged``. ``operator_key`` insists on that key.
        """
        with self.audit.event(actor, "directory.trust", None) as event:
            actor.require(Permission.PARTNERS_MANAGE, "trust a directory")
            if not is_url(source):
                source = str(Path(source).resolve())
            if len(source) > MAX_SOURCE:
                raise UsageError(f"A directory source is at most {MAX_SOURCE} characters.")
            event["source"] = source
            pinned = parse_key_text(operator_key, "--operator-key") if operator_key is not None else None
            directory = parse_directory(self._fetch(source), pinned_key=pinned)
            event.update(object=directory.name, serial=directory.serial,
                         operator_key=key_text(directory.operator_key), fingerprint=fingerprint(directory.operator_key))
            now = self.clock()
            if directory.issued > now + CLOCK_SKEW:
                raise SecurityError(f"This edition of {directory.name} is issued for {card_time(directory.issued)}, "
                                    "still in the future; check both clocks.")
            with self.engine.begin() as conn:
                row = conn.execute(select(t.trusted_directories).where(
                    t.trusted_directories.c.org_id == actor.org_id,
                    t.trusted_directories.c.name == directory.name).with_for_update()).first()
                values = {"source": source, "fetched_at": now, "last_error": None}
                if row is None:
                    event["change"] = "new"
                    try:
                        conn.execute(insert(t.trusted_directories).values(
                            org_id=actor.org_id, name=directory.name, added_by=actor.name, **values,
                            **self._edition(directory)))
                    except SAIntegrityError:
                        raise Conflict(f"{directory.name} was trusted by someone else at the same moment; look "
                                       "at it with 'directory show' and try again.") from None
                else:
                    event["change"] = _compare(_trusted(row), directory, lambda: str(row.document))
                    if event["change"] == "newer":
                        values.update(self._edition(directory))
                    conn.execute(update(t.trusted_directories).where(
                        t.trusted_directories.c.org_id == actor.org_id,
                        t.trusted_directories.c.name == directory.name).values(**values))
            return self._get(actor.org_id, directory.name), event["change"]

    @staticmethod
    def _edition(directory: Directory) -> dict[str, Any]:
        return {"operator_key": key_text(directory.operator_key), "serial": directory.serial,
                "document": canonical_json(directory.document).decode("utf-8"), "issued": directory.issued}

    def list(self, actor: Actor) -> builtins.list[TrustedDirectory]:
        actor.require(Permission.PARTNERS_READ, "see trusted directories")
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_COLUMNS).where(t.trusted_directories.c.org_id == actor.org_id)
                                .order_by(t.trusted_directories.c.name))
            return [_trusted(r) for r in rows]

    def get(self, actor: Actor, name: str) -> tuple[TrustedDirectory, Directory]:
        """One trusted directory and its current edition."""
        actor.require(Permission.PARTNERS_READ, "see trusted directories")
        trusted = self._get(actor.org_id, name)
        return trusted, parse_directory(self._document(actor.org_id, name), pinned_key=trusted.operator_key)

    def _document(self, org_id: str, name: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(select(t.trusted_directories.c.document).where(
                t.trusted_directories.c.org_id == org_id, t.trusted_directories.c.name == name)).scalar_one())

    def _get(self, org_id: str, name: str) -> TrustedDirectory:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(
                t.trusted_directories.c.org_id == org_id, t.trusted_directories.c.name == name)).first()
        if row is None:
            raise NotFound(f"{org_id} does not trust a directory called {name!r}; see 'directory list'.")
        return _trusted(row)

    def refresh(self) -> builtins.list[str]:
        """Fetch every trusted directory again and keep newer editions; returns ``org/name`` of each updated.

        Failures are recorded in ``last_error`` and logged, never raised: one unreachable directory
        must not stop the others.
        """
        with self.engine.connect() as conn:
            rows = [_trusted(r) for r in conn.execute(select(*_COLUMNS).order_by(
                t.trusted_directories.c.org_id, t.trusted_directories.c.name))]
        fetched: dict[str, bytes | CivicshareError] = {}
        updated: list[str] = []
        for trusted in rows:
            try:
                if trusted.source not in fetched:
                    try:
                        fetched[trusted.source] = self._fetch(trusted.source)
                    except CivicshareError as exc:
                        fetched[trusted.source] = exc
                data = fetched[trusted.source]
                if isinstance(data, CivicshareError):
                    raise data
                if self._refresh_one(trusted, data):
                    updated.append(f"{trusted.org_id}/{trusted.name}")
            except CivicshareError as exc:
                self._record_error(trusted, exc.message)
            except Exception as exc:  # noqa: BLE001 - a refresh must never take the server down
                log.warning("directory refresh failed", organisation=trusted.org_id, directory=trusted.name,
                            error=type(exc).__name__)
                self._record_error(trusted, f"unexpected error ({type(exc).__name__})")
        return updated

    def _refresh_one(self, trusted: TrustedDirectory, data: bytes) -> bool:
        directory = parse_directory(data, pinned_key=trusted.operator_key)
        change = _compare(trusted, directory, lambda: self._document(trusted.org_id, trusted.name))
        now = self.clock()
        values: dict[str, Any] = {"fetched_at": now, "last_error": None}
        if change == "newer":
            if directory.issued > now + CLOCK_SKEW:
                raise SecurityError(f"The new edition is issued for {card_time(directory.issued)}, still in the "
                                    "future; check both clocks.")
            values.update(self._edition(directory))
        with self.engine.begin() as conn:
            # Only over the edition read above: a concurrent 'directory use' may have stored a newer one.
            done = conn.execute(update(t.trusted_directories).where(
                t.trusted_directories.c.org_id == trusted.org_id, t.trusted_directories.c.name == trusted.name,
                t.trusted_directories.c.serial == trusted.serial).values(**values)).rowcount
        if change == "newer" and done:
            self.audit.append(trusted.org_id, REFRESH_ACTOR, "directory.trust", trusted.name, details={
                "change": "newer", "serial": directory.serial, "previous_serial": trusted.serial,
                "source": trusted.source, "revocations": len(directory.revocations)})
            return True
        return False

    def _record_error(self, trusted: TrustedDirectory, message: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(t.trusted_directories).where(
                    t.trusted_directories.c.org_id == trusted.org_id,
                    t.trusted_directories.c.name == trusted.name).values(last_error=message[:2000]))
        except Exception as exc:  # noqa: BLE001 - recording the failure must not fail the refresh
            log.warning("directory refresh error not recorded", organisation=trusted.org_id, error=type(exc).__name__)


_COLUMNS = [c for c in t.trusted_directories.c if c.name != "document"]


def _compare(trusted: TrustedDirectory, directory: Directory, stored: Callable[[], str]) -> str:
    """``newer`` or ``unchanged``; refuses another operator, another name, an older or a forked edition.

    ``stored`` gives the stored edition's document, read only when the serials are equal.
    """
    if not hmac.compare_digest(trusted.operator_key, directory.operator_key):
        raise SecurityError(f"This edition of {directory.name} is signed by {key_text(directory.operator_key)}, "
                            f"not by the pinned operator key {key_text(trusted.operator_key)}.")
    if directory.name != trusted.name:
        raise SecurityError(f"The directory at {trusted.source} is now called {directory.name!r}, not "
                            f"{trusted.name!r}; a directory does not change its name.")
    if directory.serial < trusted.serial:
        raise SecurityError(f"This edition of {trusted.name} has serial {directory.serial}, older than the "
                            f"{trusted.serial} already accepted; an older edition could lift a revocation.")
    if directory.serial == trusted.serial:
        if canonical_json(directory.document).decode("utf-8") != stored():
            raise SecurityError(f"This edition of {trusted.name} has serial {directory.serial}, like the one "
                                "already accepted, but different contents: the operator signed two editions "
                                "under one serial. Ask the operator what happened.")
        return "unchanged"
    return "newer"
