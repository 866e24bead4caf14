"""The Node: one civicshare home and every use case. The CLI, the API and the tests all drive it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import Actor, Permission, Role
from civicshare.agreements.guard import AgreementGuard
from civicshare.agreements.lifecycle import AgreementLifecycle
from civicshare.agreements.register import AgreementRegister
from civicshare.agreements.retention import Retention
from civicshare.audit import AuditEntry, AuditLog, VerifyReport, verify_log
from civicshare.audit.log import SignedCheckpoint
from civicshare.audit.witness import WitnessBook, read_checkpoint
from civicshare.clock import Clock, Rng, iso, system_clock, system_rng
from civicshare.config import Layout, NodeConfig, check_org_id, sqlite_url
from civicshare.crypto import FileKeystore, KdfParams, Keystore
from civicshare.db import Database, open_database
from civicshare.db import tables as t
from civicshare.errors import (
    CivicshareError,
    ConfigError,
    Conflict,
    KeystoreLocked,
    NotFound,
    PermissionDenied,
    UsageError,
)
from civicshare.exchange import witnessing
from civicshare.exchange.deletion import DELETION_CERTIFICATE
from civicshare.exchange.directory import DirectoryOperator
from civicshare.exchange.federation import Federation
from civicshare.exchange.gate import Gate
from civicshare.exchange.nonces import NonceBook
from civicshare.exchange.notices import NoticeOutbox
from civicshare.exchange.partners import PartnerBook
from civicshare.exchange.transfers import Exchange
from civicshare.exchange.trust import Trust
from civicshare.exchange.witnessing import PartnerWitness
from civicshare.holdings.exporting import describe_holding, export_described
from civicshare.holdings.store import Holding, HoldingStore
from civicshare.keys import RECEIVING, KeyRecord, KeyRegister
from civicshare.node_agreements import AgreementUseCases
from civicshare.node_exchange import ExchangeUseCases
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.holding_quality import holding_quality
from civicshare.schemas.quality import QualityReport
from civicshare.schemas.suggest import suggest_for_file
from civicshare.signin import SignIn
from civicshare.users import User, Users

PassphraseSource = str | Callable[[], str] | None


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    url: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "url": self.url, "created": iso(self.created_at)}


class Node(ExchangeUseCases, AgreementUseCases):
    """An open node home. Keystores are unlocked on first use, so read-only listings need no passphrase."""

    def __init__(self, layout: Layout, config: NodeConfig, db: Database, *, passphrase: PassphraseSource,
                 clock: Clock = system_clock, rng: Rng = system_rng, kdf: KdfParams | None = None) -> None:
        self.layout = layout
        self.config = config
        self.db = db
        self.clock = clock
        self.rng = rng
        self._passphrase = passphrase
        self._kdf = kdf
        self._keystores: dict[str, Keystore] = {}
        self.audit = AuditLog(db.engine, clock)
        self.users = Users(db.engine, clock, rng, self.audit)
        self.keys = KeyRegister(db.engine, clock, rng)
        self.holdings = HoldingStore(db.engine, layout, self.keys, self.audit, self.keystore, clock, rng, db.scrub)
        self.schemas = SchemaCatalog(layout.schemas_dir)
        self.holdings.schemas = self.schemas.get  # imports into a schema look it up by name
        self.partner_book = PartnerBook(db.engine, self.audit, clock)
        self.nonces = NonceBook(db.engine)
        self.trust = Trust(db.engine, clock)
        self.gate = Gate(db.engine, self.audit, self.trust, self.nonces, clock)
        self.federation = Federation(db.engine, self.audit, clock)
        self.directory = DirectoryOperator(layout.directory_dir, self.audit, self._unlock_passphrase, clock, rng,
                                           kdf=kdf)
        self.witnesses = WitnessBook(db.engine, self.audit, clock)
        self.exchange = Exchange(self)
        self.agreement_register = AgreementRegister(db.engine, self.audit, clock, rng)
        self.notices = NoticeOutbox(db.engine, self.audit, clock, rng, hosted=self.hosts, trusts=self.reaches)
        self.agreement_lifecycle = AgreementLifecycle(self)
        self.agreement_guard = AgreementGuard(self)
        self.holdings.check_access = self.agreement_guard.check_access
        self.retention = Retention(self)
        self.notices.local[DELETION_CERTIFICATE] = self.retention.accept_local
        self.signin = SignIn(self)  # web sign-in: passwords, lock-out, TOTP and sessions

    # Opening and creating ----------------------------------------------------------------------

    @classmethod
    def init(cls, home: Path, org_id: str, name: str, *, url: str | None = None, db_url: str | None = None,
             passphrase: PassphraseSource, clock: Clock = system_clock, rng: Rng = system_rng,
             kdf: KdfParams | None = None, by: str = "operator") -> Node:
        """Create a new node home hosting one organisation. Refuses to touch an existing home."""
        check_org_id(org_id)
        layout = Layout(Path(home).resolve())
        if layout.config.exists():
            raise Conflict(f"{layout.home} is already a civicshare node home.")
        if layout.home.exists() and any(layout.home.iterdir()):
            raise Conflict(f"{layout.home} is not empty; choose a new folder for the node home.")
        created_home = not layout.home.exists()
        layout.make_dirs()
        config = NodeConfig(db_url=db_url or sqlite_url(layout.default_sqlite), url=url)
        try:
            db = open_database(config.db_url)
            with db.engine.connect() as conn:
                if conn.execute(select(t.organisations.c.id)).first() is not None:
                    raise Conflict(f"The database {db.safe_url} already belongs to another node home.")
            node = cls(layout, config, db, passphrase=passphrase, clock=clock, rng=rng, kdf=kdf)
            node.add_organisation(org_id, name, url=url, by=by)
        except BaseException:
            # Leave nothing half-made behind: a failed init can be run again.
            if created_home:
                shutil.rmtree(layout.home, ignore_errors=True)
            else:
                for child in layout.home.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            raise
        fd = os.open(layout.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(config.dumps())
        return node

    @classmethod
    def open(cls, home: Path, *, passphrase: PassphraseSource = None, clock: Clock = system_clock,
             rng: Rng = system_rng, kdf: KdfParams | None = None) -> Node:
        layout = Layout(Path(home).resolve())
        config = NodeConfig.load(layout.config)
        return cls(layout, config, open_database(config.db_url), passphrase=passphrase, clock=clock,
                   rng=rng, kdf=kdf)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Organisations -----------------------------------------------------------------------------

    def add_organisation(self, org_id: str, name: str, *, url: str | None = None,
                         by: str = "operator") -> Organisation:
        check_org_id(org_id)
        name = name.strip()
        if not name:
            raise UsageError("An organisation needs a name, such as 'North Wold District Council'.")
        path = self.layout.keystore(org_id)
        if path.exists():
            raise Conflict(f"Organisation {org_id} already has a keystore at {path}.")
        store = FileKeystore.create(path, self._unlock_passphrase(), kdf=self._kdf, rng=self.rng)
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(t.organisations).values(id=org_id, name=name, url=url,
                                                            created_at=self.clock()))
                self.keys.create_org_keys(conn, org_id, store)
                self.audit.create(conn, org_id)
        except SAIntegrityError:
            path.unlink(missing_ok=True)
            raise Conflict(f"Organisation {org_id} already exists on this node.") from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._keystores[org_id] = store
        self.audit.append(org_id, by, "organisation.create", org_id, details={"name": name})
        for key in self.keys.list(org_id):
            self.audit.append(org_id, by, "key.create", key.id, details={
                "purpose": key.purpose, "algorithm": key.algorithm, "custody": key.custody})
        return self.organisation(org_id)

    def organisations(self) -> list[Organisation]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(t.organisations).order_by(t.organisations.c.id))
            return [Organisation(r.id, r.name, r.url, r.created_at) for r in rows]

    def organisation(self, org_id: str) -> Organisation:
        for org in self.organisations():
            if org.id == org_id:
                return org
        raise NotFound(f"No organisation {org_id!r} on this node.")

    def resolve_org(self, org_id: str | None) -> str:
        """The organisation a command is for: the one given, or the only one the node hosts."""
        orgs = self.organisations()
        if org_id is not None:
            if not any(o.id == org_id for o in orgs):
                raise NotFound(f"No organisation {org_id!r} on this node.")
            return org_id
        if len(orgs) == 1:
            return orgs[0].id
        raise UsageError("This node hosts several organisations; say which with --org: "
                         + ", ".join(o.id for o in orgs) + ".")

    # Keys --------------------------------------------------------------------------------------

    def _unlock_passphrase(self) -> str:
        source = self._passphrase
        value = source() if callable(source) else source
        if not value:
            raise KeystoreLocked("The keystore is locked: set CIVICSHARE_PASSPHRASE or run the command "
                                 "in a terminal to be asked for the passphrase.")
        # Ask once per process, however many organisations are unlocked.
        self._passphrase = value
        return value

    def keystore(self, org_id: str) -> Keystore:
        store = self._keystores.get(org_id)
        if store is None:
            path = self.layout.keystore(org_id)
            if not path.exists():
                raise ConfigError(f"The keystore of organisation {org_id} is missing: expected {path}.")
            store = FileKeystore.open(path, self._unlock_passphrase(), rng=self.rng)
            # Finish any key destruction a crash interrupted after the register recorded it.
            for key_id in self.keys.destroyed_ids(org_id) & set(store.key_ids()):
                store.destroy(key_id)
            self._keystores[org_id] = store
        return store

    def key_register(self, actor: Actor) -> list[KeyRecord]:
        actor.require(Permission.KEYS_READ, "see the key register")
        return self.keys.list(actor.org_id)

    def rotate_kek(self, actor: Actor) -> tuple[str, int]:
        """Replace the organisation's KEK; returns the new KEK id and how many data keys were re-wrapped."""
        with self.audit.event(actor, "key.rotate", None, purpose="kek") as event:
            actor.require(Permission.KEYS_ROTATE, "rotate keys")
            before = {k.id for k in self.keys.list(actor.org_id) if k.purpose == "kek" and k.state == "active"}
            new_kek, count = self.keys.rotate_kek(actor.org_id, self.keystore(actor.org_id))
            event.update(object=new_kek, rewrapped=count, replaced=sorted(before))
        self.audit.append(actor.org_id, actor.name, "key.create", new_kek, details={"purpose": "kek"})
        for old in sorted(before):
            self.audit.append(actor.org_id, actor.name, "key.destroy", old, details={"purpose": "kek"})
        return new_kek, count

    def export_age_identity(self, actor: Actor, out: Path) -> str:
        """Write the organisation's age identity for the standard `age` tool; returns its key id."""
        with self.audit.event(actor, "key.export", None, purpose="receiving") as event:
            actor.require(Permission.KEYS_EXPORT, "export keys")
            with self.db.engine.connect() as conn:
                key_id = self.keys.current(conn, actor.org_id, RECEIVING)
            event["object"] = key_id
            secret = self.keystore(actor.org_id).age_identity(key_id)
            try:
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise Conflict(f"{out} already exists; choose another file name.") from None
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"# civicshare age identity of {actor.org_id}, key {key_id}\n{secret}\n")
            return key_id

    # Users -------------------------------------------------------------------------------------

    def add_user(self, org_id: str, name: str, role: Role, password: str | None = None, *,
                 by: str = "operator") -> tuple[User, str]:
        self.organisation(org_id)
        return self.users.add(org_id, name, role, password, by=by)

    def authenticate(self, token: str) -> Actor:
        return self.users.authenticate(token)

    # Holdings ----------------------------------------------------------------------------------

    def import_dataset(self, actor: Actor, source: Path, name: str, **options: Any) -> Holding:
        return self.holdings.import_dataset(actor, source, name, **options)

    def quarantine_of(self, actor: Actor, holding_id: str) -> Holding | None:
        """The holding that took the invalid rows of ``holding_id`` under the quarantine policy, if any."""
        return self.holdings.quarantine_of(actor, holding_id)

    def suggest_mapping(self, actor: Actor, source: Path, schema: str, **options: Any) -> str:
        """A mapping (YAML, every guess marked REVIEW) from the file's headers and first rows to ``schema``."""
        actor.require(Permission.HOLDINGS_IMPORT, "prepare imports")
        return suggest_for_file(source, self.schemas.get(schema), **options)

    def import_document(self, actor: Actor, source: BinaryIO, filename: str, **options: Any) -> Holding:
        return self.holdings.import_document(actor, source, filename, **options)

    def list_holdings(self, actor: Actor) -> list[Holding]:
        return self.holdings.list_holdings(actor)

    def holding(self, actor: Actor, holding_id: str) -> Holding:
        return self.holdings.get(actor, holding_id)

    def export(self, actor: Actor, holding_id: str, out: Path, fmt: str | None = None, *,
               overwrite: bool = False) -> tuple[Holding, int | None]:
        """Write a holding out in plaintext; a dataset's Table Schema goes beside a file, FILE.schema.json."""
        return export_described(
            lambda: self.holdings.export(actor, holding_id, out, fmt, overwrite=overwrite), out,
            lambda h: describe_holding(self.schemas, h), overwrite=overwrite,
            peek=lambda: self.holdings.lookup(actor, holding_id).kind)

    def holding_table_schema(self, actor: Actor, holding_id: str) -> dict[str, Any]:
        """The Frictionless Table Schema of a dataset: its schema's fields, or every column as text."""
        return describe_holding(self.schemas, self.holding(actor, holding_id))

    def shred(self, actor: Actor, holding_id: str) -> Holding:
        return self.holdings.shred(actor, holding_id)

    def quality(self, actor: Actor, holding_id: str) -> QualityReport:
        """A dataset's quality report: the one stored on import, or computed now (and stored)."""
        return holding_quality(self, actor, holding_id)

    # Audit -------------------------------------------------------------------------------------

    def _require_audit(self, actor: Actor, doing: str) -> None:
        """Refusals are logged; allowed reads are not, or every checkpoint would grow the log it signs."""
        try:
            actor.require(Permission.AUDIT_READ, doing)
        except PermissionDenied as exc:
            self.audit.append(actor.org_id, actor.name, "audit.read", None, "refused",
                              {"code": exc.code, "reason": exc.message})
            raise

    def audit_entries(self, actor: Actor, *, obj: str | None = None, by: str | None = None,
                      since: datetime | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Who touched what, when: the organisation's audit entries, filtered."""
        self._require_audit(actor, "read the audit log")
        return self.audit.entries(actor.org_id, obj=obj, actor=by, since=since, limit=limit)

    def audit_checkpoint(self, actor: Actor) -> SignedCheckpoint:
        """Sign a checkpoint of the organisation's log as it stands (C2SP tlog-checkpoint)."""
        self._require_audit(actor, "sign audit checkpoints")
        key_id, public = self.keys.signing_key(actor.org_id)
        store = self.keystore(actor.org_id)
        return self.audit.checkpoint(actor.org_id, public, lambda data: store.sign(key_id, data))

    def audit_checkpoints(self, actor: Actor) -> list[SignedCheckpoint]:
        self._require_audit(actor, "read the audit log")
        return self.audit.checkpoints(actor.org_id)

    def audit_inclusion(self, actor: Actor, index: int, size: int | None = None) -> dict[str, Any]:
        self._require_audit(actor, "read the audit log")
        return self.audit.inclusion(actor.org_id, index, size)

    def audit_consistency(self, actor: Actor, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        self._require_audit(actor, "read the audit log")
        return self.audit.consistency(actor.org_id, old_size, new_size)

    def audit_verify(self, actor: Actor, saved_checkpoints: list[str] | None = None, *,
                     witnesses: bool = False, client_options: dict[str, Any] | None = None) -> VerifyReport:
        """Recompute the whole log and check every checkpoint; raises AuditTampered naming the index.

        With ``witnesses``, every trusted partner is also asked for the checkpoints of this log it
        kept, and the log must match each of them. The report says per partner how many were checked
        or why it could not be asked; a partner's note that is not a checkpoint of this log signed
        with this organisation's key is reported against that partner, not counted.
        """
        self._require_audit(actor, "verify the audit log")
        _key_id, public = self.keys.signing_key(actor.org_id)
        notes = list(saved_checkpoints or [])
        answers: list[PartnerWitness] = []
        if witnesses:
            answers = witnessing.gather(self, actor.org_id, **(client_options or {}))
            verifier = self.audit.verifier_key(actor.org_id, public)
            for answer in answers:
                try:
                    for note in answer.notes:
                        read_checkpoint(note, actor.org_id, verifier)
                except CivicshareError as exc:
                    answer.error = f"it handed back a checkpoint that is not ours: {exc.message}"
                    answer.notes = []
                notes.extend(answer.notes)
        report = verify_log(self.audit, actor.org_id, public, notes)
        if witnesses:
            report.witnesses = [a.to_json() for a in answers]
        return report

    def audit_verifier_key(self, actor: Actor) -> str:
        """The key partners pin to check this organisation's checkpoints."""
        self._require_audit(actor, "read the audit log")
        return self.audit.verifier_key(actor.org_id, self.keys.signing_key(actor.org_id)[1])
