"""The register of data sharing agreements: every version of every agreement an organisation is party to.

This is the central log the ICO Data Sharing Code expects: each agreement with its state, parties,
purpose, lawful basis, dates and next review, and warnings for reviews that are due or overdue. An
agreement enters the register as a draft. A changed agreement under the same id is a new version
(with its own hash); the same agreement twice is refused, naming the version already there.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
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

DRAFT = "draft"
# Reviews this close are flagged in the register, so there is time to hold them.
REVIEW_WARNING = timedelta(days=30)
CSV_COLUMNS = ("id", "version", "state", "parties", "purpose", "lawful basis", "classification", "start", "end",
               "next review", "hash", "warnings")


@dataclass(frozen=True)
class AgreementRecord:
    """One version of an agreement as the register keeps it, with the warnings due ``today``."""

    org_id: str
    agreement: Agreement
    state: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    warnings: tuple[str, ...]

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
            "updated": iso(self.updated_at),
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

    def _next_id(self, conn: Any, org_id: str, now: datetime) -> str:
        prefix = f"DSA-{now.year:04d}-"
        ids = conn.execute(select(t.agreements.c.id).where(
            t.agreements.c.org_id == org_id, t.agreements.c.id.like(prefix + "%"))).scalars()
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
            rows = conn.execute(select(t.agreements).where(t.agreements.c.org_id == actor.org_id)
                                .order_by(t.agreements.c.id, t.agreements.c.version)).all()
        today = self.clock().date()
        return [self._record(row, today) for row in rows]

    def get(self, actor: Actor, agreement_id: str, version: int | None = None) -> AgreementRecord:
        """One agreement: the version asked for, or its newest."""
        actor.require(Permission.AGREEMENTS_READ, "see data sharing agreements")
        query = select(t.agreements).where(t.agreements.c.org_id == actor.org_id, t.agreements.c.id == agreement_id)
        if version is not None:
            query = query.where(t.agreements.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(t.agreements.c.version.desc())).first()
        if row is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"There is no {which}agreement {agreement_id!r} in the register of {actor.org_id}.")
        return self._record(row, self.clock().date())

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

    def _record(self, row: Any, today: date) -> AgreementRecord:
        # Stored bodies are read back through the same checks, and must hash to what was recorded.
        agreement = check_agreement(parse_json(row.body))
        if agreement.agreement_hash != row.hash or agreement.id != row.id or agreement.agreement_version != row.version:
            raise IntegrityError(f"The stored agreement {row.id} version {row.version} does not match its hash; "
                                 "the register has been changed outside civicshare.")
        return AgreementRecord(row.org_id, agreement, row.state, utc(row.created_at), row.created_by,
                               utc(row.updated_at), warnings_for(agreement, today))
