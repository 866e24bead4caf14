"""A holding as recorded: what an organisation holds, and the words for its kinds and uses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from civicshare.access import Actor
from civicshare.agreements.model import CLASSIFICATIONS, OFFICIAL
from civicshare.clock import iso
from civicshare.errors import UsageError

DATASET, DOCUMENT = "dataset", "document"
EXPORT_FORMATS = ("csv", "jsonl", "parquet", "xlsx")
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
# RFC 6838 type/subtype names, without parameters: what is later sent back in a Content-Type header.
MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\Z")
# What a holding may be used for; a received holding's agreement is checked for each (agreements.guard).
VIEW, EXPORT, SHARE = "view", "export", "share"
AccessCheck = Callable[[Actor, str, str], None]


@dataclass(frozen=True)
class Holding:
    id: str
    org_id: str
    kind: str
    name: str
    media_type: str
    size: int
    rows: int | None
    columns: list[str] | None
    format: str | None
    encoding: str | None
    key_id: str
    blob: str
    created_at: datetime
    created_by: str
    shredded_at: datetime | None
    shredded_by: str | None
    classification: str = OFFICIAL
    schema: str | None = None  # "name@version" of the schema the rows follow
    quality_score: float | None = None
    quarantine_of: str | None = None  # the holding whose invalid rows this one holds
    quality: str | None = field(default=None, repr=False)  # the quality report, JSON
    sha256: str | None = None  # fixity: a document's contents, measured on import or verified on arrival

    @property
    def shredded(self) -> bool:
        return self.shredded_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "organisation": self.org_id, "kind": self.kind, "name": self.name,
            "media_type": self.media_type, "classification": self.classification, "size": self.size,
            "rows": self.rows, "columns": self.columns,
            "source_format": self.format, "source_encoding": self.encoding, "key": self.key_id,
            "created": iso(self.created_at), "created_by": self.created_by,
            "state": "shredded" if self.shredded else "held",
            "shredded": iso(self.shredded_at), "shredded_by": self.shredded_by,
            "schema": self.schema, "quality_score": self.quality_score, "quarantine_of": self.quarantine_of,
            "sha256": self.sha256,
        }


def holding_from_row(row: Any) -> Holding:
    return Holding(
        row.id, row.org_id, row.kind, row.name, row.media_type, row.size, row.rows,
        json.loads(row.columns) if row.columns else None, row.format, row.encoding, row.key_id, row.blob,
        row.created_at, row.created_by, row.shredded_at, row.shredded_by, row.classification,
        row.schema, row.quality_score, row.quarantine_of, row.quality, row.sha256,
    )


def check_classification(value: str) -> str:
    """A holding's security classification: OFFICIAL, or OFFICIAL-SENSITIVE (the handling caveat)."""
    if value not in CLASSIFICATIONS:
        raise UsageError(f"Unknown classification {value!r}: choose {' or '.join(CLASSIFICATIONS)}.")
    return value


def shredded_message(holding: Holding) -> str:
    return (f"Holding {holding.id} ({holding.name}) was shredded on {iso(holding.shredded_at)} "
            f"by {holding.shredded_by}; its contents can no longer be read by anyone.")


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 300:
        raise UsageError("A holding name must be 1 to 300 characters.")
    return name
