"""Encrypted holdings: every dataset and document under its own data key, wrapped by the org's KEK."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Engine, insert, select, update

from civicshare.access import Actor, Permission
from civicshare.agreements.model import OFFICIAL
from civicshare.audit.log import AuditLog
from civicshare.clock import Clock, Rng, new_id
from civicshare.config import Layout
from civicshare.crypto import (
    Keystore,
    discard_leftovers,
    new_document_key,
    new_table_key,
    open_sealed,
    open_sealed_to_file,
    seal_stream,
)
from civicshare.db import tables as t
from civicshare.errors import Conflict, NotFound, Shredded, UsageError
from civicshare.holdings.model import (  # noqa: F401 - the names users of the store import from here
    DATASET,
    DOCUMENT,
    EXPORT,
    EXPORT_FORMATS,
    MEDIA_TYPE_RE,
    PARQUET_MEDIA_TYPE,
    SHARE,
    VIEW,
    AccessCheck,
    Holding,
    check_classification,
    check_name,
    holding_from_row,
    shredded_message,
)
from civicshare.holdings.tabular import detect_format, export_table, import_table
from civicshare.keys import KeyRegister
from civicshare.schemas.importing import FLAG, QUARANTINE, QUARANTINE_SUFFIX, check_table, plan_import

if TYPE_CHECKING:
    from civicshare.schemas.model import Schema


class HoldingStore:
    def __init__(self, engine: Engine, layout: Layout, register: KeyRegister, audit: AuditLog,
                 keystore: Callable[[str], Keystore], clock: Clock, rng: Rng,
                 scrub: Callable[[], None]) -> None:
        self.engine = engine
        self.audit = audit
        self.layout = layout
        self.register = register
        self.keystore = keystore
        self.clock = clock
        self.rng = rng
        self.scrub = scrub
        # Set by the node: refuses a use of a holding its data sharing agreement does not allow.
        self.check_access: AccessCheck | None = None
        # Set by the node: the schema catalogue's lookup by name, for imports into a schema.
        self.schemas: Callable[[str], Schema] | None = None

    def _guard(self, actor: Actor, holding_id: str, use: str) -> None:
        if self.check_access is not None:
            self.check_access(actor, holding_id, use)

    # Reading -----------------------------------------------------------------------------------

    def list_holdings(self, actor: Actor) -> list[Holding]:
        actor.require(Permission.HOLDINGS_READ, "list holdings")
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.holdings).where(t.holdings.c.org_id == actor.org_id)
                                .order_by(t.holdings.c.created_at, t.holdings.c.id))
            return [holding_from_row(r) for r in rows]

    def get(self, actor: Actor, holding_id: str) -> Holding:
        """A holding's details; logged as a view."""
        with self.audit.event(actor, "holding.view", holding_id):
            actor.require(Permission.HOLDINGS_READ, "see holdings")
            holding = self._get(actor, holding_id)
            self._guard(actor, holding_id, VIEW)
            return holding

    def lookup(self, actor: Actor, holding_id: str) -> Holding:
        """A holding's details for a use case that logs its own event (sharing), not logged as a view."""
        actor.require(Permission.HOLDINGS_READ, "see holdings")
        return self._get(actor, holding_id)

    def _get(self, actor: Actor, holding_id: str) -> Holding:
        with self.engine.connect() as conn:
            # Scoped by organisation: another organisation's holding is simply not found.
            row = conn.execute(select(t.holdings).where(
                t.holdings.c.id == holding_id, t.holdings.c.org_id == actor.org_id)).first()
        if row is None:
            raise NotFound(f"No holding {holding_id!r} in organisation {actor.org_id}.")
        return holding_from_row(row)

    # Import ------------------------------------------------------------------------------------

    def import_dataset(self, actor: Actor, source: Path, name: str, *, fmt: str | None = None,
                       encoding: str = "auto", label: str | None = None, classification: str = OFFICIAL,
                       schema: str | None = None, mapping: str | bytes | None = None,
                       mapping_label: str | None = None, policy: str = FLAG) -> Holding:
        """Import a dataset, into ``schema`` through ``mapping`` (YAML text) if given, applying
        ``policy`` (flag, quarantine or reject) to invalid rows. The quality report is stored with the
        holding; under quarantine, invalid rows become a second holding (see :meth:`quarantine_of`)."""
        with self.audit.event(actor, "holding.import", None, kind=DATASET, classification=classification) as event:
            actor.require(Permission.HOLDINGS_IMPORT, "import holdings")
            name = check_name(name)
            classification = check_classification(classification)
            plan = plan_import(self.schemas, schema, mapping, mapping_label, policy)
            holding_id, key_id = new_id("h", self.rng), new_id("k", self.rng)
            # An upload held in memory has no file name of its own; its label (the original name) tells.
            fmt = fmt or detect_format(Path(label) if label else source)
            event.update(object=holding_id, format=fmt, schema=plan.schema_key, policy=plan.policy)
            dek = new_table_key(self.rng)
            blob = self._new_blob(actor.org_id, holding_id, ".parquet")
            today = self.clock().date()
            shown = label or source.name
            info = import_table(source, blob, dek, fmt=fmt, encoding=encoding, label=label,
                                work_dir=self.layout.work_dir, shape=plan.shape(shown, today))
            event.update(rows=info.rows, columns=len(info.columns), encoding=info.encoding, key=key_id)
            quarantine_id = quarantine_key_id = None
            quarantine: tuple[Path, bytes] | None = None
            if plan.policy == QUARANTINE:
                quarantine_id, quarantine_key_id = new_id("h", self.rng), new_id("k", self.rng)
                quarantine = (self._new_blob(actor.org_id, quarantine_id, ".parquet"), new_table_key(self.rng))
            try:
                checked = check_table(plan, blob, dek, info.columns, info.rows, today=today, label=shown,
                                      quarantine=quarantine)
            except BaseException:
                blob.unlink(missing_ok=True)
                raise
            # Audit details carry whole numbers only: the score (one decimal place) goes as text.
            event.update(quality_score=f"{checked.report.score:g}", invalid_rows=checked.report.invalid_rows)
            common = dict(media_type=PARQUET_MEDIA_TYPE, size=info.source_size, columns=json.dumps(info.columns),
                          format=info.format, encoding=info.encoding, classification=classification,
                          schema=plan.schema_key)
            also = []
            if checked.quarantine_report is not None and quarantine_id and quarantine_key_id and quarantine:
                event.update(rows=checked.rows, quarantined=checked.quarantined, quarantine=quarantine_id)
                also.append((quarantine_id, quarantine_key_id, quarantine[1], quarantine[0], dict(
                    common, name=check_name(name[:300 - len(QUARANTINE_SUFFIX)] + QUARANTINE_SUFFIX),
                    rows=checked.quarantined, quarantine_of=holding_id,
                    quality=checked.quarantine_report.dumps(), quality_score=checked.quarantine_report.score)))
            return self._commit(actor, holding_id, key_id, dek, blob, DATASET, dict(
                common, name=name, rows=checked.rows, quality=checked.report.dumps(),
                quality_score=checked.report.score), also=also)

    def quarantine_of(self, actor: Actor, holding_id: str) -> Holding | None:
        """The holding that took the invalid rows of ``holding_id`` on import, if any."""
        actor.require(Permission.HOLDINGS_READ, "see holdings")
        with self.engine.connect() as conn:
            row = conn.execute(select(t.holdings).where(
                t.holdings.c.quarantine_of == holding_id, t.holdings.c.org_id == actor.org_id)).first()
        return None if row is None else holding_from_row(row)

    def import_document(self, actor: Actor, source: BinaryIO, filename: str, *, title: str | None = None,
                        media_type: str | None = None, classification: str = OFFICIAL) -> Holding:
        with self.audit.event(actor, "holding.import", None, kind=DOCUMENT, classification=classification) as event:
            actor.require(Permission.HOLDINGS_IMPORT, "import holdings")
            name = check_name(title or Path(filename).name)
            classification = check_classification(classification)
            media_type = media_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
            if not MEDIA_TYPE_RE.match(media_type):
                raise UsageError(f"{media_type!r} is not a media type; give one such as application/pdf or text/plain.")
            holding_id, key_id = new_id("h", self.rng), new_id("k", self.rng)
            event.update(object=holding_id, media_type=media_type)
            dek = new_document_key()
            blob = self._new_blob(actor.org_id, holding_id, ".age")
            size, sha256 = seal_stream(source, blob, dek)
            event.update(size=size, key=key_id, sha256=sha256)
            return self._commit(actor, holding_id, key_id, dek, blob, DOCUMENT, dict(
                name=name, media_type=media_type, size=size, rows=None, columns=None, format=None, encoding=None,
                classification=classification, sha256=sha256))

    def _new_blob(self, org_id: str, holding_id: str, suffix: str) -> Path:
        folder = self.layout.blob_dir(org_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder / f"{holding_id}{suffix}"

    def _commit(self, actor: Actor, holding_id: str, key_id: str, dek: bytes, blob: Path, kind: str,
                fields: dict[str, Any], also: Sequence[tuple[str, str, bytes, Path, dict[str, Any]]] = (),
                *, key_registered: bool = False) -> Holding:
        """Record the holding and its wrapped key (and ``also`` further holdings of the same kind, such
        as quarantined rows) in one transaction; on failure, drop the blobs. ``key_registered``: the
        first holding's key is in the register already (a sealing key reserved for it)."""
        records = [(holding_id, key_id, dek, blob, fields), *also]
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                for record_id, record_key_id, record_dek, record_blob, record_fields in records:
                    if not (key_registered and record_id == holding_id):
                        self.register.add_data_key(conn, actor.org_id, record_id, kind,
                                                   self.keystore(actor.org_id), record_key_id, record_dek)
                    conn.execute(insert(t.holdings).values(
                        id=record_id, org_id=actor.org_id, kind=kind, key_id=record_key_id,
                        blob=str(record_blob.relative_to(self.layout.home)), created_at=now,
                        created_by=actor.name, **record_fields))
        except BaseException:
            for record in records:
                record[3].unlink(missing_ok=True)
            raise
        for record_id, record_key_id, *_ in records[1 if key_registered else 0:]:
            self.audit.append(actor.org_id, actor.name, "key.create", record_key_id,
                              details={"purpose": "data", "holding": record_id, "custody": "wrapped"})
        return self._get(actor, holding_id)

    def open_dataset(self, actor: Actor, holding: Holding) -> tuple[Path, bytes]:
        """The blob and unwrapped data key (logged as key.unwrap) of a dataset the actor was allowed to
        see with :meth:`get`, for reading it inside the node (its quality report)."""
        actor.require(Permission.HOLDINGS_READ, "see holdings")
        if holding.org_id != actor.org_id or holding.kind != DATASET:
            raise NotFound(f"No dataset {holding.id!r} in organisation {actor.org_id}.")
        return self._blob(holding), self._data_key(actor, holding)

    # Sharing and receiving -------------------------------------------------------------------

    def open_for_sharing(self, actor: Actor, holding_id: str) -> tuple[Holding, Path, bytes]:
        """The holding, its blob and its unwrapped data key (logged as key.unwrap), to seal a copy for a
        partner. Shredded when its key is gone; AgreementRefused when it arrived under an agreement
        that does not allow sharing it onward now."""
        actor.require(Permission.HOLDINGS_EXPORT, "share holdings")
        holding = self._get(actor, holding_id)
        self._guard(actor, holding_id, SHARE)
        return holding, self._blob(holding), self._data_key(actor, holding)

    def import_received(self, actor: Actor, kind: str, name: str, media_type: str,
                        write: Callable[[Path, bytes], tuple[int, int | None, list[str] | None]], *,
                        received_from: str, transfer: str, classification: str = OFFICIAL,
                        sha256: str | None = None, reserved: tuple[str, str, bytes] | None = None) -> Holding:
        """Store a holding that arrived from a partner under a fresh data key, or under ``reserved``
        (holding id, key id, key: a sealing key made for this document, in the key register already).

        ``write(blob, key)`` must create ``blob`` (atomically, leaving nothing on failure) sealed under
        ``key`` -- encrypted Parquet for a dataset, age for a document -- and return its size, rows
        and columns. The holding is recorded only after that succeeded, with the classification the
        sender gave it. ``sha256`` is a document's fixity value, which ``write`` must have checked
        against the contents it sealed.
        """
        with self.audit.event(actor, "holding.import", None, kind=kind, received_from=received_from,
                              transfer=transfer, classification=classification) as event:
            actor.require(Permission.HOLDINGS_IMPORT, "import holdings")
            name = check_name(name)
            classification = check_classification(classification)
            if kind not in (DATASET, DOCUMENT) or not MEDIA_TYPE_RE.match(media_type):
                raise UsageError(f"A received holding is a dataset or document with a media type, not {kind!r}.")
            dataset = kind == DATASET
            if reserved is not None and dataset:
                raise UsageError("A sealing key is reserved for a document, not a dataset.")
            if reserved is not None:
                holding_id, key_id, dek = reserved
            else:
                holding_id, key_id = new_id("h", self.rng), new_id("k", self.rng)
                dek = new_table_key(self.rng) if dataset else new_document_key()
            event.update(object=holding_id, media_type=media_type)
            blob = self._new_blob(actor.org_id, holding_id, ".parquet" if dataset else ".age")
            if reserved is not None:
                # The reserved id is used once; a file there was left by an attempt killed before it was recorded.
                discard_leftovers(blob)
            try:
                size, rows, columns = write(blob, dek)
                event.update(size=size, rows=rows, columns=len(columns) if columns else None, key=key_id,
                             sha256=sha256)
            except BaseException:
                blob.unlink(missing_ok=True)
                raise
            return self._commit(actor, holding_id, key_id, dek, blob, kind, key_registered=reserved is not None,
                                fields=dict(
                name=name, media_type=media_type, size=size, rows=rows,
                columns=json.dumps(columns) if columns is not None else None,
                format="parquet" if dataset else None, encoding=None, classification=classification,
                sha256=sha256))

    # Export and shred --------------------------------------------------------------------------

    def export(self, actor: Actor, holding_id: str, out: Path, fmt: str | None = None, *,
               overwrite: bool = False) -> tuple[Holding, int | None]:
        """Write a holding out in plaintext, where the user asked. Returns rows written for datasets."""
        with self.audit.event(actor, "holding.export", holding_id, format=fmt) as event:
            holding, rows = self._export(actor, holding_id, out, fmt, overwrite=overwrite)
            event.update(kind=holding.kind, rows=rows)
            return holding, rows

    def _export(self, actor: Actor, holding_id: str, out: Path, fmt: str | None, *,
                overwrite: bool) -> tuple[Holding, int | None]:
        actor.require(Permission.HOLDINGS_EXPORT, "export holdings")
        holding = self._get(actor, holding_id)
        self._guard(actor, holding_id, EXPORT)
        if holding.kind == DATASET:
            fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
            if fmt not in EXPORT_FORMATS:
                raise UsageError(f"Unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}.")
        elif fmt not in (None, "original"):
            raise UsageError("A document is exported as the original file; leave out --format.")
        key = self._data_key(actor, holding)
        if holding.kind == DOCUMENT:
            if out.exists() and not overwrite:
                raise Conflict(f"{out} already exists; choose another file name.")
            if out.parts[:2] in (("/", "proc"), ("/", "dev")):
                # An in-memory file or a device is written in place: there is nothing to rename.
                with out.open("r+b") as fh:
                    fh.truncate(0)
                    open_sealed(self._blob(holding), key, fh)
            else:
                open_sealed_to_file(self._blob(holding), key, out, overwrite=overwrite)
            return holding, None
        assert fmt is not None
        rows = export_table(self._blob(holding), key, out, fmt, overwrite=overwrite)
        return holding, rows

    def shred(self, actor: Actor, holding_id: str) -> Holding:
        """Destroy the holding's data key (crypto-shredding), then its encrypted bytes."""
        with self.audit.event(actor, "holding.shred", holding_id):
            actor.require(Permission.HOLDINGS_SHRED, "shred holdings")
            holding = self._get(actor, holding_id)
            if holding.shredded:
                raise Shredded(shredded_message(holding))
            with self.engine.begin() as conn:
                self.register.destroy_data_key(conn, actor.org_id, holding.key_id)
                conn.execute(update(t.holdings).where(
                    t.holdings.c.id == holding_id, t.holdings.c.org_id == actor.org_id,
                ).values(shredded_at=self.clock(), shredded_by=actor.name))
            self.scrub()
            self._blob(holding).unlink(missing_ok=True)
            self.audit.append(actor.org_id, actor.name, "key.destroy", holding.key_id,
                              details={"purpose": "data", "holding": holding_id})
            return self._get(actor, holding_id)

    def _blob(self, holding: Holding) -> Path:
        return self.layout.home / holding.blob

    def _data_key(self, actor: Actor, holding: Holding) -> bytes:
        if holding.shredded:
            raise Shredded(shredded_message(holding))
        key = self.register.unwrap_data_key(holding.org_id, holding.key_id, self.keystore(holding.org_id))
        if key is None:
            raise Shredded(f"Holding {holding.id} cannot be read: its data key has been destroyed.")
        self.audit.append(actor.org_id, actor.name, "key.unwrap", holding.key_id, details={"holding": holding.id})
        return key
