"""An agreement's life: draft, proposed, signed by every party, then expired, revoked or superseded.

Every party keeps its own copy of the same agreement (the same hash) in its register. The party that
proposes sends the agreement to every other party; each party's data protection officer signs its
hash with the organisation's key, and the signature goes to every other party; a version signed by
every party is in force between its dates. Any party may revoke it (the revocation goes to every
other party too), and a later version signed by every party supersedes the earlier ones at once.

Each change and the notices announcing it are written in one transaction (civicshare.exchange.notices
sends them); receiving a document is idempotent, checks the sender, the signature with the key this
organisation trusts for that party, and the hash, and is audited (``agreement.received``), as is every
refusal (``exchange.refused``), with nothing stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import ROLE_WORDS, Actor, Permission
from civicshare.agreements import documents as docs
from civicshare.agreements.register import (
    DRAFT,
    PROPOSED,
    REVOKED,
    SIGNED,
    SUPERSEDED,
    AgreementRecord,
    AgreementRegister,
)
from civicshare.audit.entry import REFUSED
from civicshare.canonical import canonical_json
from civicshare.db import tables as t
from civicshare.errors import (
    CivicshareError,
    Conflict,
    InvalidInput,
    NotForUs,
    PermissionDenied,
    SecurityError,
    UnknownSender,
    UsageError,
)

if TYPE_CHECKING:
    from civicshare.node import Node

RECEIVER = "node:agreements"
PROPOSALS_PATH = "/agreements"
_SIGNATURES_RE = re.compile(r"/agreements/([^/]+)/signatures")
_REVOCATIONS_RE = re.compile(r"/agreements/([^/]+)/revocations")


class NotYetHere(CivicshareError):
    """A signature or revocation for a version that has not reached this organisation yet: send it later."""

    code = "not_yet"
    http_status = 409


def signatures_path(agreement_id: str) -> str:
    return f"/agreements/{agreement_id}/signatures"


def revocations_path(agreement_id: str) -> str:
    return f"/agreements/{agreement_id}/revocations"


def subject(record: AgreementRecord) -> str:
    return f"{record.id} version {record.version}"


class AgreementLifecycle:
    """Proposing, signing and revoking agreements, and receiving those documents from partners."""

    def __init__(self, node: Node) -> None:
        self.node = node
        node.notices.local.update({
            docs.PROPOSAL: lambda org, sender, _path, doc: self.receive_proposal(org, sender, doc),
            docs.SIGNATURE: lambda org, sender, path, doc: self.receive_signature(
                org, sender, _path_id(_SIGNATURES_RE, path), doc),
            docs.REVOCATION: lambda org, sender, path, doc: self.receive_revocation(
                org, sender, _path_id(_REVOCATIONS_RE, path), doc),
        })

    @property
    def register(self) -> AgreementRegister:
        return self.node.agreement_register

    # Helpers -----------------------------------------------------------------------------------

    def _hosted(self, org_id: str) -> bool:
        return any(o.id == org_id for o in self.node.organisations())

    def _signer(self, org_id: str) -> tuple[str, Callable[[bytes], bytes]]:
        key_id, _public = self.node.keys.signing_key(org_id)
        store = self.node.keystore(org_id)
        return key_id, lambda data: store.sign(key_id, data)

    def _public_key(self, org_id: str, party: str) -> bytes:
        """The signing key ``org_id`` trusts for ``party``: its own key when hosted here, else the pinned one."""
        if self._hosted(party):
            return self.node.keys.signing_key(party)[1]
        return self.node.trust.partner(org_id, party).signing_key

    def _reachable(self, org_id: str, record: AgreementRecord) -> list[str]:
        """The other parties, each hosted here or a partner ``org_id`` trusts; UnknownSender otherwise."""
        others = [p for p in record.agreement.party_ids if p != org_id]
        for party in others:
            if self._hosted(party):
                continue
            try:
                self.node.trust.partner(org_id, party)
            except CivicshareError as exc:
                raise UnknownSender(f"{party} is a party to {record.id} but {org_id} cannot send it anything: "
                                    f"{exc.message} Pin its card with 'civicshare partner add' first.") from None
        return others

    @contextmanager
    def _locked(self, org_id: str, agreement_id: str) -> Iterator[Connection]:
        """A transaction holding the rows of one agreement, so concurrent signatures settle in turn."""
        with self.node.db.engine.begin() as conn:
            conn.execute(select(t.agreements.c.version).where(
                t.agreements.c.org_id == org_id, t.agreements.c.id == agreement_id).with_for_update()).all()
            yield conn

    def _settle(self, conn: Connection, org_id: str, agreement_id: str) -> list[tuple[int, str, str]]:
        """Store what follows from the signatures held: a version signed by every party is ``signed``,
        and every earlier version (not revoked) ``superseded``. Returns (version, from, to) changes."""
        versions = self.register.versions(conn, org_id, agreement_id)
        changes = []
        for record in versions:
            if record.stored_state == REVOKED:
                continue
            later = any(o.version > record.version and o.fully_signed for o in versions)
            target = SUPERSEDED if later else SIGNED if record.fully_signed else record.stored_state
            if target != record.stored_state:
                conn.execute(update(t.agreements).where(
                    t.agreements.c.org_id == org_id, t.agreements.c.id == agreement_id,
                    t.agreements.c.version == record.version).values(state=target, updated_at=self.node.clock()))
                changes.append((record.version, record.stored_state, target))
        return changes

    def _audit_changes(self, org_id: str, actor: str, agreement_id: str, changes: list[tuple[int, str, str]]) -> None:
        for version, before, after in changes:
            self.node.audit.append(org_id, actor, "agreement.state", agreement_id, details={
                "version": version, "from": before, "to": after})

    # Use cases ---------------------------------------------------------------------------------

    def propose(self, actor: Actor, agreement_id: str, version: int | None = None) -> AgreementRecord:
        """Send a draft (the newest version, unless ``version``) to every other party; draft -> proposed.

        Proposing again sends it again (partners take the same proposal twice as once).
        """
        with self.node.audit.event(actor, "agreement.propose", agreement_id) as event:
            actor.require(Permission.AGREEMENTS_MANAGE, "propose data sharing agreements")
            record = self.register.get(actor, agreement_id, version)
            event.update(version=record.version, hash=record.hash)
            if record.stored_state not in (DRAFT, PROPOSED):
                raise Conflict(f"{subject(record)} is {record.state}, so it cannot be proposed; a changed agreement "
                               "is a new version: create it, then propose that.")
            others = self._reachable(actor.org_id, record)
            now = self.node.clock()
            key_id, sign = self._signer(actor.org_id)
            document = docs.make_proposal(record.agreement, actor.org_id, now, key_id, sign)
            with self._locked(actor.org_id, record.id) as conn:
                conn.execute(update(t.agreements).where(
                    t.agreements.c.org_id == actor.org_id, t.agreements.c.id == record.id,
                    t.agreements.c.version == record.version).values(
                    state=PROPOSED if record.stored_state == DRAFT else record.stored_state,
                    proposed_by=record.proposed_by or actor.org_id, proposed_at=record.proposed_at or now,
                    updated_at=now))
                notices = [self.node.notices.queue(conn, actor.org_id, party, docs.PROPOSAL, subject(record),
                                                   PROPOSALS_PATH, document) for party in others]
            self.node.notices.wake.set()  # committed: serve may send them now
            event.update(to=others, notices=notices, state=PROPOSED)
        return self.register.get(actor, record.id, record.version)

    def sign(self, actor: Actor, agreement_id: str, version: int | None = None, *,
             operator: str | None = None) -> AgreementRecord:
        """Sign a proposed version's hash for the actor's organisation (a data protection officer only).

        ``operator`` names who acted for the officer at the node's shell, for the audit log. When every
        party has signed, the version is ``signed`` and earlier versions ``superseded``.
        """
        with self.node.audit.event(actor, "agreement.sign", agreement_id, operator=operator) as event:
            if not actor.may(Permission.AGREEMENTS_SIGN):
                raise PermissionDenied(f"{actor.name} is {ROLE_WORDS[actor.role]} and may not sign data sharing "
                                       f"agreements: only a data protection officer (a user with the dpo role) "
                                       f"signs for {actor.org_id}.")
            record = self.register.get(actor, agreement_id, version)
            event.update(version=record.version, hash=record.hash)
            if record.stored_state == DRAFT:
                raise UsageError(f"{subject(record)} is a draft; propose it to the other parties first "
                                 f"('civicshare agreement propose {record.id}').")
            if record.stored_state in (REVOKED, SUPERSEDED):
                raise Conflict(f"{subject(record)} is {record.stored_state}; it can no longer be signed.")
            if actor.org_id in record.signed_parties:
                when = next(s for s in record.signatures if s.party == actor.org_id)
                raise Conflict(f"{actor.org_id} already signed {subject(record)} on "
                               f"{when.signed_at.date().isoformat()} ({when.signed_by}).")
            others = self._reachable(actor.org_id, record)
            now = self.node.clock()
            key_id, sign = self._signer(actor.org_id)
            document = docs.make_signature(record.agreement, actor.org_id, actor.name, now, key_id, sign)
            with self._locked(actor.org_id, record.id) as conn:
                self._store_signature(conn, actor.org_id, record, actor.org_id, actor.name, now, document)
                notices = [self.node.notices.queue(conn, actor.org_id, party, docs.SIGNATURE, subject(record),
                                                   signatures_path(record.id), document) for party in others]
                changes = self._settle(conn, actor.org_id, record.id)
            self.node.notices.wake.set()
            event.update(to=others, notices=notices, signed_by=actor.name)
        self._audit_changes(actor.org_id, actor.name, record.id, changes)
        return self.register.get(actor, record.id, record.version)

    def revoke(self, actor: Actor, agreement_id: str, reason: str, version: int | None = None) -> AgreementRecord:
        """End a version for every party (the one in force, unless ``version``); tells every other party."""
        with self.node.audit.event(actor, "agreement.revoke", agreement_id, reason=reason) as event:
            actor.require(Permission.AGREEMENTS_MANAGE, "revoke data sharing agreements")
            reason = (reason or "").strip()
            if not reason or len(reason) > docs.MAX_REASON or "\n" in reason:
                raise UsageError(f"Give the reason for revoking in one line of at most {docs.MAX_REASON} "
                                 "characters (--reason).")
            self.register.get(actor, agreement_id, version)  # the permission check and a plain NotFound
            record = self.register.find(actor.org_id, agreement_id, version)
            event.update(version=record.version, hash=record.hash)
            if record.stored_state == DRAFT:
                raise UsageError(f"{subject(record)} is a draft that no other party has seen; there is nothing to "
                                 "revoke.")
            if record.stored_state == REVOKED:
                raise Conflict(f"{subject(record)} was already revoked: {record.stop_words()}.")
            if record.stored_state == SUPERSEDED:
                raise Conflict(f"{subject(record)} is already superseded by version {record.superseded_by}; "
                               "revoke that version instead.")
            others = self._reachable(actor.org_id, record)
            now = self.node.clock()
            key_id, sign = self._signer(actor.org_id)
            document = docs.make_revocation(record.agreement, actor.org_id, actor.name, reason, now, key_id, sign)
            with self._locked(actor.org_id, record.id) as conn:
                self._store_revocation(conn, actor.org_id, record, actor.org_id, reason, now, document)
                notices = [self.node.notices.queue(conn, actor.org_id, party, docs.REVOCATION, subject(record),
                                                   revocations_path(record.id), document) for party in others]
            self.node.notices.wake.set()
            event.update(to=others, notices=notices, state=REVOKED)
        return self.register.get(actor, record.id, record.version)

    # Storing -----------------------------------------------------------------------------------

    def _store_signature(self, conn: Connection, org_id: str, record: AgreementRecord, party: str, signed_by: str,
                         signed_at: Any, document: dict[str, Any]) -> bool:
        """Keep a party's signature; False if that party's signature of this version was already here."""
        s = t.agreement_signatures.c
        held = conn.execute(select(s.hash).where(
            s.org_id == org_id, s.agreement_id == record.id, s.version == record.version, s.party == party)).first()
        if held is not None:
            return False
        conn.execute(insert(t.agreement_signatures).values(
            org_id=org_id, agreement_id=record.id, version=record.version, party=party, hash=record.hash,
            signed_by=signed_by, signed_at=signed_at, document=canonical_json(document).decode("utf-8"),
            received_at=self.node.clock()))
        return True

    def _store_revocation(self, conn: Connection, org_id: str, record: AgreementRecord, party: str, reason: str,
                          revoked_at: Any, document: dict[str, Any]) -> None:
        conn.execute(update(t.agreements).where(
            t.agreements.c.org_id == org_id, t.agreements.c.id == record.id,
            t.agreements.c.version == record.version).values(
            state=REVOKED, revoked_at=revoked_at, revoked_by=party, revoked_reason=reason,
            revocation=canonical_json(document).decode("utf-8"), updated_at=self.node.clock()))

    # Receiving ---------------------------------------------------------------------------------

    def _received(self, org_id: str, sender: str, kind: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            answer = work()
        except CivicshareError as exc:
            self.node.audit.append(org_id, RECEIVER, "exchange.refused", sender, REFUSED, {
                "sender": sender, "kind": kind, "code": exc.code, "reason": exc.message})
            raise
        self.node.audit.append(org_id, RECEIVER, "agreement.received", answer["agreement"], details={
            "kind": kind, "sender": sender, "version": answer["agreement_version"], "hash": answer["hash"],
            "state": answer["state"], "new": answer.pop("new")})
        return answer

    def _verify(self, org_id: str, sender: str, kind: str, document: object) -> bytes:
        """The key to verify a document with, once its claimed signer is the authenticated sender."""
        claimed = docs.claimed_signer(kind, document)
        if claimed != sender:
            raise SecurityError(f"This {kind} is made out for {claimed} but was sent by {sender}; a party sends "
                                "only its own.")
        return self._public_key(org_id, claimed)

    def _answer(self, org_id: str, record: AgreementRecord, new: bool) -> dict[str, Any]:
        current = self.register.find(org_id, record.id, record.version)
        return {"version": 1, "agreement": current.id, "agreement_version": current.version, "hash": current.hash,
                "state": current.state, "new": new}

    def receive_proposal(self, org_id: str, sender: str, document: object) -> dict[str, Any]:
        """Keep a partner's proposal as ``proposed`` (the same proposal twice is taken once)."""
        return self._received(org_id, sender, docs.PROPOSAL, lambda: self._receive_proposal(org_id, sender, document))

    def _receive_proposal(self, org_id: str, sender: str, document: object) -> dict[str, Any]:
        proposal = docs.read_proposal(document, self._verify(org_id, sender, docs.PROPOSAL, document))
        agreement = proposal.agreement
        assert agreement.id is not None and agreement.agreement_version is not None
        if org_id not in agreement.party_ids:
            raise NotForUs(f"Agreement {agreement.id} does not name {org_id} as a party.")
        if proposal.proposer not in agreement.party_ids:
            raise SecurityError(f"{proposal.proposer} proposed agreement {agreement.id} but is not one of its parties.")
        existing = self.register.by_hash(org_id, agreement.agreement_hash)
        if existing is not None:
            return self._answer(org_id, existing, False)
        now = self.node.clock()
        try:
            with self._locked(org_id, agreement.id) as conn:
                self.register.refuse_other_provider(conn, org_id, agreement.id, agreement.provider)
                other = conn.execute(select(t.agreements.c.hash).where(
                    t.agreements.c.org_id == org_id, t.agreements.c.id == agreement.id,
                    t.agreements.c.version == agreement.agreement_version)).scalar()
                if other is not None:
                    raise Conflict(f"{org_id} already holds version {agreement.agreement_version} of {agreement.id} "
                                   f"with another hash ({other[:12]}...); a changed agreement is a new version.")
                conn.execute(insert(t.agreements).values(
                    org_id=org_id, id=agreement.id, version=agreement.agreement_version, hash=agreement.agreement_hash,
                    content_hash=agreement.content_hash, state=PROPOSED, body=agreement.canonical().decode("utf-8"),
                    provider=agreement.provider, start_date=agreement.start_date, end_date=agreement.end_date,
                    review_date=agreement.review_date, created_at=now, created_by=f"partner:{sender}",
                    updated_at=now, proposed_by=proposal.proposer, proposed_at=proposal.proposed))
                self._settle(conn, org_id, agreement.id)
        except SAIntegrityError:
            # The same proposal arrived twice at once; the other copy is kept.
            existing = self.register.by_hash(org_id, agreement.agreement_hash)
            if existing is None:
                raise
            return self._answer(org_id, existing, False)
        return self._answer(org_id, self.register.find(org_id, agreement.id, agreement.agreement_version), True)

    def _held(self, conn: Connection, org_id: str, agreement_id: str, version: int, digest: str, party: str,
              kind: str) -> AgreementRecord:
        """The version a signature or revocation is about, with the same hash and ``party`` among its parties."""
        record = next((r for r in self.register.versions(conn, org_id, agreement_id) if r.version == version), None)
        if record is None:
            raise NotYetHere(f"Version {version} of agreement {agreement_id} has not reached {org_id} yet; the "
                             f"{kind} will be taken when its proposal has arrived.")
        if record.hash != digest:
            raise SecurityError(f"This {kind} of {agreement_id} version {version} covers the hash "
                                f"{digest[:12]}..., but the version {org_id} holds has the hash "
                                f"{record.hash[:12]}...: it is about a different agreement.")
        if party not in record.agreement.party_ids:
            raise SecurityError(f"{party} is not a party to agreement {agreement_id}.")
        return record

    def receive_signature(self, org_id: str, sender: str, agreement_id: str, document: object) -> dict[str, Any]:
        """Keep another party's signature of a version held here (verified with that party's key)."""
        return self._received(org_id, sender, docs.SIGNATURE,
                              lambda: self._receive_signature(org_id, sender, agreement_id, document))

    def _receive_signature(self, org_id: str, sender: str, agreement_id: str, document: object) -> dict[str, Any]:
        signature = docs.read_signature(document, self._verify(org_id, sender, docs.SIGNATURE, document))
        if signature.agreement_id != agreement_id:
            raise InvalidInput(f"This signature is of {signature.agreement_id}, sent to the route of {agreement_id}.")
        with self._locked(org_id, agreement_id) as conn:
            record = self._held(conn, org_id, agreement_id, signature.agreement_version, signature.hash,
                                signature.party, docs.SIGNATURE)
            new = self._store_signature(conn, org_id, record, signature.party, signature.signed_by,
                                        signature.signed, signature.document)
            changes = self._settle(conn, org_id, agreement_id)
        self._audit_changes(org_id, RECEIVER, agreement_id, changes)
        return self._answer(org_id, record, new)

    def receive_revocation(self, org_id: str, sender: str, agreement_id: str, document: object) -> dict[str, Any]:
        """A party ended a version: it is revoked here too, from the moment the party revoked it."""
        return self._received(org_id, sender, docs.REVOCATION,
                              lambda: self._receive_revocation(org_id, sender, agreement_id, document))

    def _receive_revocation(self, org_id: str, sender: str, agreement_id: str, document: object) -> dict[str, Any]:
        revocation = docs.read_revocation(document, self._verify(org_id, sender, docs.REVOCATION, document))
        if revocation.agreement_id != agreement_id:
            raise InvalidInput(f"This revocation is of {revocation.agreement_id}, sent to the route of {agreement_id}.")
        with self._locked(org_id, agreement_id) as conn:
            record = self._held(conn, org_id, agreement_id, revocation.agreement_version, revocation.hash,
                                revocation.party, docs.REVOCATION)
            new = record.stored_state != REVOKED
            if new:
                self._store_revocation(conn, org_id, record, revocation.party, revocation.reason, revocation.revoked,
                                       revocation.document)
        return self._answer(org_id, record, new)

    def revocation_document(self, org_id: str, agreement_id: str, version: int) -> dict[str, Any] | None:
        """The signed revocation of a version, as the revoking party made it (None if not revoked)."""
        with self.node.db.engine.connect() as conn:
            text = conn.execute(select(t.agreements.c.revocation).where(
                t.agreements.c.org_id == org_id, t.agreements.c.id == agreement_id,
                t.agreements.c.version == version)).scalar()
        return None if text is None else dict(json.loads(text))


def _path_id(pattern: re.Pattern[str], path: str) -> str:
    match = pattern.fullmatch(path)
    if match is None:
        raise InvalidInput(f"{path} is not an agreement route.")
    return match.group(1)

