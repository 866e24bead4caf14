"""The quality report of a dataset: completeness, validity, uniqueness, consistency and one score.

The figures are computed in DuckDB by :func:`profile` (the SQL is in :mod:`civicshare.schemas.profiling`) and
kept as JSON on the holding. A report never holds a value from the data, only counts and row numbers
(1-based data rows, the header not counted), so its summary can travel in a share's manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from civicshare.errors import IntegrityError

if TYPE_CHECKING:
    import duckdb

    from civicshare.schemas.model import Schema

REPORT_VERSION = 1
# How much each part counts towards the overall score; parts that do not apply are left out.
WEIGHTS = {"completeness": 40, "validity": 40, "uniqueness": 10, "consistency": 10}
_PART_WORDS = {
    "completeness": "completeness of the required fields (every field if the schema requires none)",
    "validity": "validity (valid values among the values present, averaged over the checked fields)",
    "uniqueness": "uniqueness (distinct identifiers among those present, and rows that are not exact copies)",
    "consistency": "consistency (identifiers that always come with the same dependent value)",
}

Groups = tuple[tuple[int, ...], ...]


def _ratio(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else part / whole


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class FieldQuality:
    """One field: how often it has a value and how often that value passes the field's checks."""

    name: str
    required: bool
    rule: str | None  # the checks in words; None when the field has none
    rows: int
    present: int  # non-empty values
    invalid: int  # non-empty values that fail the checks
    examples: tuple[int, ...] = ()  # row numbers of the first invalid values
    in_data: bool = True  # False: a schema field the dataset has no column for

    @property
    def missing(self) -> int:
        return self.rows - self.present

    @property
    def completeness(self) -> float:
        return _ratio(self.present, self.rows)

    @property
    def validity(self) -> float | None:
        """Valid values among those present; None when there is nothing to check."""
        if self.rule is None or self.present == 0:
            return None
        return (self.present - self.invalid) / self.present

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "required": self.required, "rule": self.rule, "in_data": self.in_data,
            "present": self.present, "missing": self.missing, "completeness": _round(self.completeness),
            "invalid": self.invalid, "validity": _round(self.validity), "invalid_examples": list(self.examples),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], rows: int) -> FieldQuality:
        return cls(str(data["name"]), bool(data["required"]), data.get("rule"), rows, int(data["present"]),
                   int(data["invalid"]), tuple(int(n) for n in data.get("invalid_examples", ())),
                   bool(data.get("in_data", True)))


@dataclass(frozen=True)
class Duplicates:
    """Repeated identifier values (``field`` set) or exact duplicate rows (``field`` None)."""

    field: str | None
    values: int  # rows with a value (all rows, for exact duplicates)
    distinct: int
    repeated: int  # values (or row contents) that occur more than once
    examples: Groups = ()  # row numbers sharing one value, a group per value

    @property
    def surplus(self) -> int:
        """Rows that repeat an earlier row's value."""
        return self.values - self.distinct

    @property
    def uniqueness(self) -> float:
        return _ratio(self.distinct, self.values)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "values": self.values, "distinct": self.distinct, "repeated": self.repeated,
                "surplus_rows": self.surplus, "uniqueness": _round(self.uniqueness),
                "examples": [list(g) for g in self.examples]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Duplicates:
        return cls(data.get("field"), int(data["values"]), int(data["distinct"]), int(data["repeated"]),
                   _groups(data.get("examples", ())))


@dataclass(frozen=True)
class Consistency:
    """Identifier values that come with more than one distinct value of a dependent field."""

    identifier: str
    field: str
    identifiers: int  # distinct identifier values with a dependent value
    conflicting: int
    rows: int  # rows carrying a conflicting identifier value
    examples: Groups = ()

    @property
    def consistency(self) -> float:
        return 1.0 - (self.conflicting / self.identifiers if self.identifiers else 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "field": self.field, "identifiers": self.identifiers,
                "conflicting": self.conflicting, "rows": self.rows, "consistency": _round(self.consistency),
                "examples": [list(g) for g in self.examples]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Consistency:
        return cls(str(data["identifier"]), str(data["field"]), int(data["identifiers"]), int(data["conflicting"]),
                   int(data["rows"]), _groups(data.get("examples", ())))


def _groups(raw: Any) -> Groups:
    return tuple(tuple(int(n) for n in group) for group in raw)


@dataclass(frozen=True)
class QualityReport:
    """Everything :func:`profile` found; ``score`` and ``parts`` follow from the figures."""

    schema: str | None  # "name@version", or None for a dataset kept as imported
    rows: int
    checked_on: date  # the day dates of birth were checked against
    fields: tuple[FieldQuality, ...]
    invalid_rows: int  # rows with an invalid value or an empty required field
    invalid_row_examples: tuple[int, ...]
    duplicate_rows: Duplicates
    identifiers: tuple[Duplicates, ...] = ()
    consistency: tuple[Consistency, ...] = ()
    weights: dict[str, int] = field(default_factory=lambda: dict(WEIGHTS))

    def field(self, name: str) -> FieldQuality:
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def parts(self) -> dict[str, float | None]:
        """Each part of the score, 0 to 1, or None where it does not apply."""
        required = [f for f in self.fields if f.required] or list(self.fields)
        validity = [v for v in (f.validity for f in self.fields) if v is not None]
        uniqueness = [d.uniqueness for d in (*self.identifiers, self.duplicate_rows) if d.values]
        consistency = [c.consistency for c in self.consistency if c.identifiers]
        return {
            "completeness": _mean([f.completeness for f in required]) if self.rows else None,
            "validity": _mean(validity),
            "uniqueness": _mean(uniqueness),
            "consistency": _mean(consistency),
        }

    @property
    def score(self) -> float:
        """0 to 100: the weighted mean of the parts that apply, to one decimal place."""
        parts = {k: v for k, v in self.parts.items() if v is not None}
        total = sum(self.weights[k] for k in parts)
        if not total:
            return 100.0
        return round(100 * sum(self.weights[k] * v for k, v in parts.items()) / total, 1)

    @property
    def how(self) -> str:
        parts = {k: v for k, v in self.parts.items() if v is not None}
        total = sum(self.weights[k] for k in parts)
        if not total:
            return "The dataset has no rows, so there is nothing to score; the score is 100."
        shown = [f"{_pct(self.weights[k] / total)} {_PART_WORDS[k]}" for k in parts]
        text = "The score is the weighted mean of " + _join(shown) + ", each from 0 to 100."
        left_out = [k for k in self.parts if k not in parts]
        if left_out:
            text += (f" {_join(left_out).capitalize()} did not apply to this dataset, so "
                     f"{'its weight was' if len(left_out) == 1 else 'their weights were'} shared out.")
        return text

    def to_json(self) -> dict[str, Any]:
        parts = self.parts
        return {
            "version": REPORT_VERSION,
            "kind": "quality-report",
            "schema": self.schema,
            "rows": self.rows,
            "checked_on": self.checked_on.isoformat(),
            "score": self.score,
            "how": self.how,
            "weights": dict(self.weights),
            "parts": {k: None if v is None else round(100 * v, 1) for k, v in parts.items()},
            "invalid_rows": self.invalid_rows,
            "invalid_row_examples": list(self.invalid_row_examples),
            "fields": [f.to_json() for f in self.fields],
            "uniqueness": {"identifiers": [d.to_json() for d in self.identifiers],
                           "exact_duplicate_rows": self.duplicate_rows.to_json()},
            "consistency": [c.to_json() for c in self.consistency],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QualityReport:
        """A report from :meth:`to_json`; IntegrityError if it is not one."""
        if not is_report(data):
            raise IntegrityError("The stored quality report is not a version 1 civicshare quality report.")
        try:
            rows = int(data["rows"])
            uniqueness = data["uniqueness"]
            return cls(
                data.get("schema"), rows, date.fromisoformat(data["checked_on"]),
                tuple(FieldQuality.from_json(f, rows) for f in data["fields"]), int(data["invalid_rows"]),
                tuple(int(n) for n in data.get("invalid_row_examples", ())),
                Duplicates.from_json(uniqueness["exact_duplicate_rows"]),
                tuple(Duplicates.from_json(d) for d in uniqueness["identifiers"]),
                tuple(Consistency.from_json(c) for c in data["consistency"]),
                {k: int(data["weights"][k]) for k in WEIGHTS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"The stored quality report is damaged ({type(exc).__name__}).") from None

    @classmethod
    def loads(cls, text: str) -> QualityReport:
        try:
            data = json.loads(text)
        except ValueError:
            raise IntegrityError("The stored quality report is not JSON.") from None
        return cls.from_json(data)

    def summary(self) -> dict[str, Any]:
        """The small form that travels in a share's manifest."""
        return {
            "version": REPORT_VERSION,
            "score": self.score,
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "fields": {f.name: {"completeness": _round(f.completeness), "validity": _round(f.validity)}
                       for f in self.fields},
        }

    def to_html(self, title: str | None = None) -> str:
        """A self-contained, accessible HTML page (no scripts, nothing fetched)."""
        from civicshare.schemas.report_html import render

        return render(self, title=title)


def is_report(data: Any) -> bool:
    """True for a full report (as stored on import), False for anything else such as a summary."""
    return isinstance(data, dict) and data.get("version") == REPORT_VERSION and data.get("kind") == "quality-report"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pct(fraction: float) -> str:
    value = round(100 * fraction, 1)
    return f"{value:g}%"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def profile(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str], schema: Schema | None, *,
            today: date, examples: int = 5, materialise: bool = False) -> QualityReport:
    """The quality report of ``relation`` (SQL usable after FROM, rows in their stored order).

    ``columns`` are the relation's columns; with a ``schema``, its fields are checked with their
    validators, type and pattern, its identifiers for repeats and its consistency pairs for conflicts.
    Without one, only completeness and exact duplicate rows are measured. ``today`` is the day dates
    of birth are checked against; ``examples`` caps every list of row numbers. The relation is read
    once per pass (four or more); with ``materialise`` it is read once and held in memory instead, which
    is quicker for a CSV file but needs memory for the whole table.
    """
    from civicshare.schemas.profiling import run_profile

    return run_profile(con, relation, columns, schema, today=today, examples=examples, materialise=materialise)


def invalid_rows_sql(schema: Schema, columns: list[str], today_sql: str = "current_date") -> str:
    """A boolean DuckDB expression over ``columns``: true for a row with an invalid value or an empty
    required field (the rows a quarantine or reject policy takes out). Never NULL."""
    from civicshare.schemas.profiling import invalid_rows_expression

    return invalid_rows_expression(schema, columns, today_sql)
