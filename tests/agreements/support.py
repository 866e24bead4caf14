"""A known-good agreement to start tests from, and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from civicshare.agreements import render_template

NORTH, SOUTH = "north-wold", "south-fen"
TODAY = date(2026, 4, 1)
SCHEMA = ["uprn", "name", "date_of_birth", "nhs_number", "tenancy_start"]


def good_yaml(**options: object) -> str:
    """The template for north-wold -> south-fen sharing three fields of 'tenants', as it stands."""
    kwargs: dict = {"dataset": "tenants", "fields": ["uprn", "name", "tenancy_start"], "schema": SCHEMA}
    kwargs.update(options)
    return render_template(NORTH, SOUTH, today=TODAY, names={NORTH: "North Wold District Council",
                                                               SOUTH: "South Fen Borough Council"}, **kwargs)


@dataclass
class Clock:
    now: datetime = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
