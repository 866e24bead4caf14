"""The register of data sharing agreements: every version of every agreement an organisation is party to.

This is the central log the ICO Data Sharing Code expects: each agreement with its state, parties,
purpose, lawful basis, dates and next review, and warnings for reviews that are due or overdue. An
agreement enters the register as a draft. A changed agreement under the same id is a new version
(with its own hash); the same agreement twice is refused, naming the version already there.

Each record carries its *effective* state, worked out with the register's clock when it is read:
a version signed by every party is ``active`` between its start and end dates, ``signed`` before
its start and ``expired`` after its end; ``revoked`` and ``superseded`` are stored as they happen
(see civicshare.agreements.lifecycle). ``stop_words`` says in plain words why a version cannot be
used now.
"""

from __future__ import annotations

import builtins
import csv
import io
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import Actor, Permission
from civicshare.agreements.model import Agreement
from civicshare.agreements.parse import parse_agreement
from civicshare.agreements.validate import check_agreement
from civicshare.audit.log import AuditLog
from civicshare.canonical import parse_json
from civicshare.clock import Clock, Rng, iso, utc
from civicshare.db import tables as t
from civicshare.errors import Conflict, IntegrityError, NotFound

# Stored states.
DRAFT, PROPOSED, SIGNED, REVOKED, SUPERSEDED = "draft", "proposed", "signed", "revoked", "superseded"
STORED_STATES = (DRAFT, PROPOSED, SIGNED, REVOKED, SUPERSEDED)
# Effective states a version signed by every party can be in, besides revoked and superseded.
ACTIVE, EXPIRED = "active", "expired"
# Reviews this close are flagged in the register, so there is time to hold them.
REVIEW_WARNING = timedelta(days=30)
CSV_COLUMNS = ("id", "version", "state", "parties", "purpose", "lawful basis", "classification", "start", "end",
               "next review", "hash", "warnings")


@dataclass(frozen=True)
class AgreementSignature:
    """One party's signature over a version's hash: who signed for the party, and when."""

    party: str
    signed_by: str
    signed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"party": self.party, "signed_by": self.signed_by, "signed": iso(self.signed_at)}


def effective_state(stored: str, agreement: Agreement, today: date) -> str:
    """What a version is on ``today``: the stored state, with ``signed`` split by its dates."""
    if stored != SIGNED:
        return stored
    if today < agreement.start_date:
        return SIGNED
    if today > agreement.end_date:
        return EXPIRED
    return ACTIVE


@dataclass(frozen=True)
class AgreementRecord:
    """One version of an agreement as the register keeps it, with its effective state and the warnings
    due ``today``. ``state`` is the effective state; ``stored_state`` what the register stores."""

    org_id: str
    agreement: Agreement
    state: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    warnings: tuple[str, ...]
    stored_state: str = DRAFT
    signatures: tuple[AgreementSignature, ...] = ()
    proposed_by: str | None = None
    proposed_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    # The version signed by every party that took over from this one, when it is superseded.
    superseded_by: int | None = None

    @property
    def signed_parties(self) -> tuple[str, ...]:
        return tuple(s.party for s in self.signatures)

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """The parties whose signature this version still needs, in the agreement's order."""
        signed = set(self.signed_parties)
        return tuple(p for p in self.agreement.party_ids if p not in signed)

    @property
    def fully_signed(self) -> bool:
        return not self.waiting_for

    def stop_words(self) -> str | None:
        """Why this version cannot be used now, in plain words; None while it is active."""
        name = f"agreement {self.id}"
        if self.state == ACTIVE:
            return None
        if self.state == REVOKED:
            day = self.revoked_at.date().isoformat() if self.revoked_at else "an unknown date"
            reason = f": {self.revoked_reason}" if self.revoked_reason else ""
            return f"{name} was revoked by {self.revoked_by or 'a party'} on {day}{reason}"
        if self.state == SUPERSEDED:
            later = f"version {self.superseded_by}" if self.superseded_by else "a later version"
            return f"{name} version {self.version} was superseded by {later}"
        if self.state == EXPIRED:
            return f"{name} ended on {self.agreement.end_date.isoformat()}"
        if self.state == SIGNED:
            return f"{name} starts on {self.agreement.start_date.isoformat()}"
        if self.state == DRAFT:
            return f"{name} is a draft: it has not been proposed to the other parties or signed"
        return f"{name} is not signed by every party yet (waiting for {', '.join(self.waiting_for)})"

    @property
    def id(self) -> str:
        assert self.agreement.id is not None
        return self.agreement.id

    @property
    def version(self) -> int:
        assert self.agreement.agreement_version is not None
        return self.agreement.agreement_version

    @property
    def hash(self) -> str:
        return self.agreement.agreement_hash

    def to_json(self, *, with_body: bool = True) -> dict[str, Any]:
        a = self.agreement
        data: dict[str, Any] = {
            "organisation": self.org_id, "id": self.id, "version": self.version, "state": self.state,
            "hash": self.hash, "parties": [p.to_body() for p in a.parties], "provider": a.provider,
            "recipients": list(a.recipients), "purpose": a.purpose, "lawful_basis": a.lawful_basis,
            "classification": a.classification, "start_date": a.start_date.isoformat(),
            "end_date": a.end_date.isoformat(), "next_review": a.review_date.isoformat(),
            "warnings": list(self.warnings), "created": iso(self.created_at), "created_by": self.created_by,
            "updated": iso(self.updated_at), "stored_state": self.stored_state,
            "signatures": [sig.to_json() for sig in self.signatures], "waiting_for": list(self.waiting_for),
            "proposed_by": self.proposed_by, "proposed": iso(self.proposed_at),
            "revocation": None if self.revoked_at is None else {
                "by": self.revoked_by, "reason": self.revoked_reason, "revoked": iso(self.revoked_at)},
            "superseded_by": self.superseded_by, "stop": self.stop_words(),
        }
        if with_body:
            data["agreement"] = a.to_body()
        return data


def warnings_for(agreement: Agreement, today: date) -> tuple[str, ...]:
    """What the register flags on ``today``: reviews due within 30 days or overdue, and the end."""
    found: list[str] = []
    review, end = agreement.review_date, agreement.end_date
    if review < today:
        found.append(f"review overdue since {review.isoformat()}")
    elif review <= today + REVIEW_WARNING:
        days = (review - today).days
        found.append(f"review due on {review.isoformat()} ({'today' if days == 0 else f'in {days} days'})")
    if end < today:
        found.append(f"ended on {end.isoformat()}")
    elif end <= today + REVIEW_WARNING:
        found.append(f"ends on {end.isoformat()}")
    return tuple(found)


class AgreementRegister:
    """Each organisation's agreements. Every query is scoped to the acting organisation."""

    def __init__(self, engine: Engine, audit: AuditLog, clock: Clock, rng: Rng) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self.rng = rng

    # Adding ------------------------------------------------------------------------------------

    def create(self, actor: Actor, text: str | bytes, *, filename: str | None = None,
               fmt: str | None = None) -> AgreementRecord:
        """Check an agreement file and add it to the register as a draft.

        Without an id the register gives the next ``DSA-YYYY-NNNN``; without a version number, the
        next version of that id. InvalidInput lists every problem; Conflict when the same agreement is
        already registered, or the version number given is taken.
        """
        with self.audit.event(actor, "agreement.create", None) as event:
            actor.require(Permission.AGREEMENTS_MANAGE, "add data sharing agreements")
            parsed = parse_agreement(text, filename=filename, fmt=fmt, org_id=actor.org_id)
            now = self.clock()
            with self.engine.begin() as conn:
                self._refuse_duplicate(conn, actor.org_id, parsed)
                agreement_id = parsed.id or self._next_id(conn, actor.org_id, now)
                self.refuse_other_provider(conn, actor.org_id, agreement_id, parsed.provider)
                version = self._version(conn, actor.org_id, agreement_id, parsed.agreement_version)
                agreement = parsed.numbered(agreement_id, version)
                event.update(object=agreement_id, version=version, hash=agreement.agreement_hash,
                             parties=list(agreement.party_ids))
                try:
                    conn.execute(insert(t.agreements).values(
                        org_id=actor.org_id, id=agreement_id, version=version, hash=agreement.agreement_hash,
                        content_hash=agreement.content_hash, state=DRAFT,
                        body=agreement.canonical().decode("utf-8"), provider=agreement.provider,
                        start_date=agreement.start_date, end_date=agreement.end_date,
                        review_date=agreement.review_date, created_at=now, created_by=actor.name, updated_at=now))
                except SAIntegrityError:
                    raise Conflict(f"Version {version} of {agreement_id} was added by someone else at the same "
                                   "moment; look at it with 'agreement show' and try again.") from None
                event["state"] = DRAFT
        return self.get(actor, agreement_id, version)

    def _refuse_duplicate(self, conn: Any, org_id: str, agreement: Agreement) -> None:
        query = select(t.agreements.c.id, t.agreements.c.version).where(
            t.agreements.c.org_id == org_id, t.agreements.c.content_hash == agreement.content_hash)
        if agreement.id is not None:
            query = query.where(t.agreements.c.id == agreement.id)
        row = conn.execute(query.order_by(t.agreements.c.id, t.agreements.c.version)).first()
        if row is not None:
            raise Conflict(f"This agreement is already in the register as {row.id} version {row.version}; "
                           "change it to make a new version.")

    @staticmethod
    def refuse_other_provider(conn: Any, org_id: str, agreement_id: str, provider: str) -> None:
        """Conflict when ``agreement_id`` is already used here for an agreement with another provider."""
        other = conn.execute(select(t.agreements.c.provider).where(
            t.agreements.c.org_id == org_id, t.agreements.c.id == agreement_id,
            t.agreements.c.provider != provider).limit(1)).scalar()
        if other is not None:
            raise Conflict(f"The agreement id {agreement_id} is already used in the register of {org_id} for an "
                           f"agreement with {other} as provider; an agreement with {provider} as provider needs "
                           "another id.")

    def _next_id(self, conn: Any, org_id: str, now: datetime) -> str:
        prefix = f"DSA-{now.year:04d}-"
        ids = conn.execute(select(t.agreements.c.id).where(
            t.agreements.c.org_id == org_id, t.agreements.c.id.like(prefix + "%"))).scalars()
        # Received agreements are in the register too, so a new id never reuses one a partner chose.
        numbers = [int(m.group(1)) for i in ids if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", i))]
        return f"{prefix}{max(numbers, default=0) + 1:04d}"

    def _version(self, conn: Any, org_id: str, agreement_id: str, asked: int | None) -> int:
        latest = conn.execute(select(func.max(t.agreements.c.version)).where(
            t.agreements.c.org_id == org_id, t.agreements.c.id == agreement_id)).scalar()
        if asked is None:
            return int(latest or 0) + 1
        if latest is not None and asked <= latest:
            raise Conflict(f"{agreement_id} already has version {latest}; a changed agreement is version "
                           f"{latest + 1} (or leave agreement_version out and the register numbers it).")
        return asked

    # Reading -----------------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[AgreementRecord]:
        """Every version of every agreement, by id then version."""
        actor.require(Permission.AGREEMENTS_READ, "see data sharing agreements")
        with self.engine.connect() as conn:
            return self._load(conn, actor.org_id)

    def get(self, actor: Actor, agreement_id: str, version: int | None = None) -> AgreementRecord:
        """One agreement: the version asked for, or its newest."""
        actor.require(Permission.AGREEMENTS_READ, "see data sharing agreements")
        with self.engine.connect() as conn:
            versions = self._load(conn, actor.org_id, agreement_id)
        return self._pick(actor.org_id, agreement_id, versions, version, newest_signed=False)

    def find(self, org_id: str, agreement_id: str, version: int | None = None) -> AgreementRecord:
        """The agreement ``org_id`` holds under this id, for the core (no permission check).

        ``version`` None means the newest version signed by every party, or the newest version when
        none is. NotFound, in plain words, when there is no such agreement here.
        """
        with self.engine.connect() as conn:
            versions = self._load(conn, org_id, agreement_id)
        return self._pick(org_id, agreement_id, versions, version, newest_signed=True)

    def versions(self, conn: Any, org_id: str, agreement_id: str) -> builtins.list[AgreementRecord]:
        """Every version of one agreement, oldest first, read on the caller's connection."""
        return self._load(conn, org_id, agreement_id)

    def by_hash(self, org_id: str, agreement_hash: str) -> AgreementRecord | None:
        """The version ``org_id`` holds with this hash, or None (for the core; no permission check)."""
        with self.engine.connect() as conn:
            agreement_id = conn.execute(select(t.agreements.c.id).where(
                t.agreements.c.org_id == org_id, t.agreements.c.hash == agreement_hash)).scalar()
            if agreement_id is None:
                return None
            versions = self._load(conn, org_id, agreement_id)
        return next((r for r in versions if r.hash == agreement_hash), None)

    def csv(self, actor: Actor) -> str:
        """The register as CSV, one row per version, for the ICO or an internal auditor."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for record in self.list(actor):
            a = record.agreement
            writer.writerow([
                record.id, record.version, record.state,
                "; ".join(f"{p.org} ({p.role.replace('_', ' ')})" for p in a.parties),
                a.purpose, a.lawful_basis_words(), a.classification, a.start_date.isoformat(),
                a.end_date.isoformat(), a.review_date.isoformat(), record.hash, "; ".join(record.warnings)])
        return buffer.getvalue()

    @staticmethod
    def _pick(org_id: str, agreement_id: str, versions: builtins.list[AgreementRecord], version: int | None, *,
              newest_signed: bool) -> AgreementRecord:
        if version is not None:
            chosen = next((r for r in versions if r.version == version), None)
        elif newest_signed:
            signed = [r for r in versions if r.fully_signed] or versions
            chosen = signed[-1] if signed else None
        else:
            chosen = versions[-1] if versions else None
        if chosen is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"There is no {which}agreement {agreement_id!r} in the register of {org_id}.")
        return chosen

    def _load(self, conn: Any, org_id: str, agreement_id: str | None = None) -> builtins.list[AgreementRecord]:
        """Records, by id then version, with their signatures and effective states."""
        a, s = t.agreements.c, t.agreement_signatures.c
        query = select(t.agreements).where(a.org_id == org_id)
        signatures = select(s.agreement_id, s.version, s.party, s.hash, s.signed_by, s.signed_at).where(
            s.org_id == org_id)
        if agreement_id is not None:
            query = query.where(a.id == agreement_id)
            signatures = signatures.where(s.agreement_id == agreement_id)
        rows = conn.execute(query.order_by(a.id, a.version)).all()
        signed: dict[tuple[str, int], builtins.list[Any]] = {}
        for sig in conn.execute(signatures.order_by(s.signed_at, s.party)):
            signed.setdefault((sig.agreement_id, sig.version), []).append(sig)
        today = self.clock().date()
        records = [self._record(row, today, signed.get((row.id, row.version), [])) for row in rows]
        # A superseded version names the first later version signed by every party.
        for i, record in enumerate(records):
            if record.stored_state == SUPERSEDED:
                later = next((r.version for r in records[i + 1:] if r.id == record.id and r.fully_signed), None)
                records[i] = replace(record, superseded_by=later)
        return records

    def _record(self, row: Any, today: date, signatures: builtins.list[Any]) -> AgreementRecord:
        # Stored bodies are read back through the same checks, and must hash to what was recorded.
        agreement = check_agreement(parse_json(row.body))
        if agreement.agreement_hash != row.hash or agreement.id != row.id or agreement.agreement_version != row.version:
            raise IntegrityError(f"The stored agreement {row.id} version {row.version} does not match its hash; "
                                 "the register has been changed outside civicshare.")
        parties = set(agreement.party_ids)
        # Only signatures over this very hash, by a party of it, count.
        sigs = tuple(AgreementSignature(sig.party, sig.signed_by, utc(sig.signed_at)) for sig in signatures
                     if sig.hash == row.hash and sig.party in parties)
        return AgreementRecord(
            row.org_id, agreement, effective_state(row.state, agreement, today), utc(row.created_at),
            row.created_by, utc(row.updated_at), warnings_for(agreement, today), stored_state=row.state,
            signatures=sigs, proposed_by=row.proposed_by,
            proposed_at=utc(row.proposed_at) if row.proposed_at is not None else None,
            revoked_at=utc(row.revoked_at) if row.revoked_at is not None else None,
            revoked_by=row.revoked_by, revoked_reason=row.revoked_reason)
