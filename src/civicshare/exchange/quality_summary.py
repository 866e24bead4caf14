"""The quality summary a dataset share carries in its manifest, and what the recipient keeps of it.

The sender puts its dataset's quality summary (civicshare.schemas.quality, ``QualityReport.summary``)
in the manifest's ``holding.quality``: the score, the rows, the rows with a fault, and for each shared
column its completeness and validity. Only the shared columns are described, so the summary says
nothing of fields the agreement keeps back; the score and counts are those of the whole dataset.

Signed documents carry whole numbers only (civicshare.canonical), so in the manifest the score (0 to
100) and the fractions (0 to 1) are written as decimal text, such as ``"71.5"`` and ``"0.9812"``.
``readable`` turns that back into the summary's own form, with numbers, for people and programs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from civicshare.db import tables as t
from civicshare.errors import InvalidInput
from civicshare.exchange.fields import CONTROL_RE, Checker, byte_count

if TYPE_CHECKING:
    from civicshare.access import Actor
    from civicshare.holdings.store import Holding
    from civicshare.node import Node

SUMMARY_VERSION = 1
PLACES = 4  # the report rounds fractions to 4 places; the score has 1
_SCORE_RE = re.compile(r"(?:100|[1-9]?[0-9])(?:\.[0-9]{1,4})?")
_FRACTION_RE = re.compile(r"0(?:\.[0-9]{1,4})?|1(?:\.0{1,4})?")
_SUMMARY_FIELDS = ("version", "score", "rows", "invalid_rows", "fields")
_FIELD_FIGURES = ("completeness", "validity")


def decimal_text(value: float) -> str:
    """``value`` to at most four decimal places, without trailing zeros: 71.5 -> "71.5", 1.0 -> "1"."""
    text = f"{value:.{PLACES}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_manifest(summary: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """The manifest form of a report's ``summary()``, describing only ``columns`` (those shared)."""
    fields = summary.get("fields") or {}
    shared = {}
    for name in columns:
        figures = fields.get(name)
        if figures is None:
            continue
        validity = figures.get("validity")
        shared[name] = {"completeness": decimal_text(float(figures["completeness"])),
                        "validity": None if validity is None else decimal_text(float(validity))}
    return {"version": SUMMARY_VERSION, "score": decimal_text(float(summary["score"])), "rows": summary["rows"],
            "invalid_rows": summary["invalid_rows"], "fields": shared}


def readable(quality: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest form back in the report summary's form: numbers instead of decimal text."""
    if quality is None:
        return None
    return {
        "version": quality["version"], "score": float(quality["score"]), "rows": quality["rows"],
        "invalid_rows": quality["invalid_rows"],
        "fields": {name: {"completeness": float(f["completeness"]),
                          "validity": None if f["validity"] is None else float(f["validity"])}
                   for name, f in quality["fields"].items()},
    }


def score_of(quality: dict[str, Any] | None) -> float | None:
    return None if quality is None else float(quality["score"])


def score_text(quality: dict[str, Any] | None) -> str | None:
    """The manifest form's score as written (decimal text), for audit details, which carry no fractions."""
    return None if quality is None else str(quality["score"])


# Reading a manifest's quality strictly ---------------------------------------------------------


def _score(value: object) -> str:
    if not isinstance(value, str) or not _SCORE_RE.fullmatch(value) or float(value) > 100:
        raise InvalidInput('must be a score from 0 to 100 written as decimal text, such as "71.5"')
    return value


def _fraction(value: object) -> str:
    if not isinstance(value, str) or not _FRACTION_RE.fullmatch(value):
        raise InvalidInput('must be a fraction from 0 to 1 written as decimal text, such as "0.9812"')
    return value


def check_quality(check: Checker, value: object, *, rows: int | None, columns: Sequence[str],
                  path: str = "holding.quality") -> dict[str, Any] | None:
    """The manifest's quality summary of a dataset with ``rows`` rows and ``columns``, or None (null).

    Every fault is noted on ``check`` with its field path: unknown or missing fields, a score outside
    0 to 100, counts that do not match the dataset, a column the dataset does not have.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        check.add("must be the dataset's quality summary (version, score, rows, invalid_rows, fields) or null",
                  path)
        return None
    before = check.total
    check.fields(value, _SUMMARY_FIELDS, path + ".", "quality summary")
    if "version" in value and (type(value["version"]) is not int or value["version"] != SUMMARY_VERSION):
        check.add(f"must be {SUMMARY_VERSION}", f"{path}.version")
    score = check.field(value, "score", _score, path + ".")
    counted = check.field(value, "rows", byte_count, path + ".")
    invalid = check.field(value, "invalid_rows", byte_count, path + ".")
    if counted is not None and rows is not None and counted != rows:
        check.add(f"is {counted}, but the dataset has {rows} rows", f"{path}.rows")
    if invalid is not None and counted is not None and invalid > counted:
        check.add(f"is {invalid}, more than the {counted} rows", f"{path}.invalid_rows")
    fields = _fields(check, value.get("fields"), columns, path + ".fields") if "fields" in value else {}
    if check.total != before:
        return None
    return {"version": SUMMARY_VERSION, "score": score, "rows": counted, "invalid_rows": invalid, "fields": fields}


def _fields(check: Checker, value: object, columns: Sequence[str], path: str) -> dict[str, dict[str, str | None]]:
    if not isinstance(value, dict):
        check.add("must map each shared column to its completeness and validity", path)
        return {}
    if len(value) > len(columns):
        check.add(f"describes {len(value)} columns; the dataset has {len(columns)}", path)
        return {}
    known = set(columns)
    result: dict[str, dict[str, str | None]] = {}
    for name, figures in value.items():
        # A name that is not one printable line is not repeated in the problem's path.
        at = f"{path}.{name}" if len(name) <= 300 and not CONTROL_RE.search(name) else f"{path}.?"
        if name not in known:
            check.add("is not a column of the dataset", at)
            continue
        if not isinstance(figures, dict):
            check.add('must be {"completeness": ..., "validity": ...}', at)
            continue
        check.fields(figures, _FIELD_FIGURES, at + ".", "column's quality")
        completeness = check.field(figures, "completeness", _fraction, at + ".")
        validity = figures.get("validity")
        if validity is not None:
            validity = check.field(figures, "validity", _fraction, at + ".")
        result[name] = {"completeness": completeness, "validity": validity}
    return result


# At the sender and at the recipient ------------------------------------------------------------


def share_summary(node: Node, actor: Actor, holding: Holding) -> dict[str, Any] | None:
    """The quality summary of a dataset about to be shared (None for a document).

    The report stored on import is used as it is; a holding without one (imported before reports,
    or received from a partner) has its report computed, and stored, by ``node.quality``.
    """
    from civicshare.schemas.quality import QualityReport, is_report

    if holding.kind != "dataset":
        return None
    data = _json(holding.quality)
    report = QualityReport.from_json(data) if is_report(data) else node.quality(actor, holding.id)
    return report.summary()


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def keep_received(node: Node, org_id: str, holding_id: str, quality: dict[str, Any] | None, *,
                  sender: str, transfer: str) -> None:
    """Store the sender's summary with the holding it describes (``quality``, ``quality_score``).

    It is not a full report (civicshare.schemas.quality.is_report says so), so the recipient's own
    report is still computed from the data when asked for. Nothing is stored for a document or a
    manifest without a summary, and a summary already kept is left as it is.
    """
    if quality is None:
        return
    kept = {**(readable(quality) or {}), "kind": "quality-summary", "from": sender, "transfer": transfer}
    with node.db.engine.begin() as conn:
        conn.execute(update(t.holdings).where(
            t.holdings.c.id == holding_id, t.holdings.c.org_id == org_id, t.holdings.c.quality.is_(None),
        ).values(quality=json.dumps(kept, ensure_ascii=False, separators=(",", ":")),
                 quality_score=score_of(quality)))
