"""Form errors in the GOV.UK pattern: an error summary at the top linking to messages by each field.

A page reads its fields through ``FormErrors`` helpers, which record a clear message per field; if any were
recorded it renders the form again with ``errors=`` (the base template then shows the summary and adds
"Error: " to the title) and status 400. Field ids are the field names, so summary links land on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from civicshare.errors import CivicshareError


@dataclass(frozen=True)
class SummaryItem:
    text: str
    href: str | None


class FormErrors:
    """Field errors collected while reading a form; false while there are none."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._general: list[str] = []

    def add(self, field: str | None, message: str) -> None:
        """Record a message by a field (the first per field wins), or for the form as a whole."""
        if field is None:
            self._general.append(message)
        else:
            self._fields.setdefault(field, message)

    def add_error(self, error: CivicshareError, field: str | None = None, fields: Iterable[str] = ()) -> None:
        """Record a core refusal; problems naming one of ``fields`` go by that field."""
        known = set(fields)
        placed = False
        for problem in error.problems:
            if problem.field in known:
                self.add(problem.field, problem.message)
                placed = True
        if not placed or not error.problems:
            self.add(field, error.message)
        for problem in error.problems:
            if problem.field not in known:
                self.add(None, str(problem))

    def message(self, field: str) -> str | None:
        """The message to show by ``field``, or None."""
        return self._fields.get(field)

    def __contains__(self, field: object) -> bool:
        return field in self._fields

    def __bool__(self) -> bool:
        return bool(self._fields or self._general)

    def __len__(self) -> int:
        return len(self._fields) + len(self._general)

    @property
    def summary(self) -> list[SummaryItem]:
        """The error summary: field errors link to their field, in the order they were found."""
        items = [SummaryItem(text, f"#{field}") for field, text in self._fields.items()]
        return items + [SummaryItem(text, None) for text in self._general]

    # Reading fields ---------------------------------------------------------------------------------------

    def text(self, form: Mapping[str, str], field: str, *, missing: str | None = None, max_length: int = 500,
             too_long: str | None = None) -> str:
        """A trimmed text field; ``missing`` is the message when it is required and empty."""
        value = (form.get(field) or "").strip()
        if not value and missing is not None:
            self.add(field, missing)
        elif len(value) > max_length:
            self.add(field, too_long or f"Enter no more than {max_length:,} characters.")
        return value

    def integer(self, form: Mapping[str, str], field: str, *, missing: str, invalid: str,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
        """A whole number; commas and spaces are allowed, as people write them."""
        raw = (form.get(field) or "").strip().replace(",", "").replace(" ", "")
        if not raw:
            self.add(field, missing)
            return None
        try:
            value = int(raw)
        except ValueError:
            self.add(field, invalid)
            return None
        if minimum is not None and value < minimum:
            self.add(field, f"{invalid.rstrip('.')}: it must be {minimum:,} or more.")
            return None
        if maximum is not None and value > maximum:
            self.add(field, f"{invalid.rstrip('.')}: it must be {maximum:,} or less.")
            return None
        return value

    def choice(self, form: Mapping[str, str], field: str, choices: Sequence[str], *, missing: str) -> str | None:
        """One of ``choices``; anything else (including a tampered value) gets the ``missing`` message."""
        value = (form.get(field) or "").strip()
        if value not in choices:
            self.add(field, missing)
            return None
        return value

    def choices(self, values: Sequence[str], field: str, choices: Sequence[str], *, missing: str | None = None,
                ) -> list[str]:
        """Ticked checkboxes (pass ``form.getlist(field)``), each one of ``choices``."""
        picked = [v for v in values if v in choices]
        if len(picked) != len(values):
            self.add(field, "Choose only from the options shown.")
        elif not picked and missing is not None:
            self.add(field, missing)
        return picked
