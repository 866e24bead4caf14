"""The quality report of a held dataset: the one stored on import, or computed now and stored.

Holdings imported before reports existed, and holdings received from partners (whose ``quality``
column keeps the sender's summary), have no full report; it is computed from the encrypted table.
A sender's summary is never overwritten: the recipient's own report is then computed each time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from civicshare.access import Actor
from civicshare.db import tables as t
from civicshare.errors import NotFound, UsageError
from civicshare.holdings import duck, encrypted
from civicshare.lazyimport import lazy_module
from civicshare.schemas.quality import QualityReport, is_report, profile

if TYPE_CHECKING:
    import duckdb

    from civicshare.node import Node
    from civicshare.schemas.model import Schema
else:
    duckdb = lazy_module("duckdb")


def holding_quality(node: Node, actor: Actor, holding_id: str) -> QualityReport:
    """The holding's quality report. Seeing it needs the right to see the holding (logged as a view)."""
    holding = node.holdings.get(actor, holding_id)
    if holding.kind != "dataset":
        raise UsageError(f"Holding {holding_id} is a document; quality reports are for datasets.")
    with node.db.engine.connect() as conn:
        row = conn.execute(select(t.holdings.c.schema, t.holdings.c.quality).where(
            t.holdings.c.id == holding_id, t.holdings.c.org_id == actor.org_id)).first()
    assert row is not None
    stored = _parse(row.quality)
    if stored is not None:
        return QualityReport.from_json(stored)
    with node.audit.event(actor, "holding.quality", holding_id) as event:
        blob, key = node.holdings.open_dataset(actor, holding)
        schema = _schema(node, row.schema)
        with duck.connection() as con:
            table = encrypted.open_table(con, blob, key)
            failure: duckdb.Error | None = None
            try:
                report = profile(con, table.scan, table.columns, schema, today=node.clock().date())
            except duckdb.Error as exc:
                failure = exc
            if failure is not None:
                raise encrypted.read_failure(failure, blob, "checking the quality of the dataset")
        # Audit details carry no fractions: the score goes in as text.
        event.update(score=f"{report.score:g}", rows=report.rows, stored=row.quality is None)
        if row.quality is None:
            with node.db.engine.begin() as conn:
                conn.execute(update(t.holdings).where(
                    t.holdings.c.id == holding_id, t.holdings.c.org_id == actor.org_id,
                    t.holdings.c.quality.is_(None)).values(quality=report.dumps(), quality_score=report.score))
    return report


def _parse(text: str | None) -> dict | None:
    """The stored report, or None when there is none (nothing stored, or a partner's summary only)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if is_report(data) else None


def _schema(node: Node, key: str | None) -> Schema | None:
    """The schema a dataset was imported with; none if the node no longer has it (then only
    completeness and exact copies are measured)."""
    catalog = getattr(node, "schemas", None)
    if not key or catalog is None:
        return None
    try:
        schema: Schema = catalog.get(str(key).split("@", 1)[0])
    except NotFound:
        return None
    return schema
