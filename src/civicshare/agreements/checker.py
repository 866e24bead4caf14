"""Reading the values of a document field by field, recording every problem with its path and line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from civicshare.config import ORG_ID_RE
from civicshare.errors import Problem

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n]")
_FIELD_NAME_MAX = 200
MAX_NAME = 200
MAX_ITEMS = 1000


class Checker:
    """Collects problems, placing each on the line of its field (or of the nearest enclosing one)."""

    def __init__(self, lines: Mapping[str, int] | None, filename: str | None) -> None:
        self.lines = lines or {}
        self.filename = filename
        self.problems: list[Problem] = []

    def line(self, field: str) -> int | None:
        path = field
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.lines.get("")

    def add(self, message: str, field: str, *, line_of: str | None = None) -> None:
        """Record a problem with ``field``; ``line_of`` names the field whose line to give, if another."""
        line = self.line(line_of or field)
        self.problems.append(Problem(message, file=self.filename, line=line, field=field))

    # Value readers: each returns the value, or None after recording why it is not acceptable.

    def text(self, value: Any, field: str, *, one_line: bool = True, limit: int = MAX_NAME) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.add("must be text" if value is not None and not isinstance(value, str) else "must not be empty",
                     field)
            return None
        if value != value.strip():
            self.add("must not begin or end with spaces", field)
            return None
        if _CONTROL.search(value) or (one_line and _LINE_BREAK.search(value)):
            self.add("must be one line of text without control characters" if one_line
                     else "must be text without control characters", field)
            return None
        if len(value) > limit:
            self.add(f"is {len(value):,} characters long; at most {limit:,} are allowed", field)
            return None
        return value

    def boolean(self, value: Any, field: str) -> bool | None:
        if not isinstance(value, bool):
            self.add("must be true or false", field)
            return None
        return value

    def org(self, value: Any, field: str) -> str | None:
        if not isinstance(value, str) or not ORG_ID_RE.fullmatch(value):
            self.add("must be an organisation id: 2 to 63 lower-case letters, digits and hyphens, such as "
                     "north-wold", field)
            return None
        return value

    def day(self, value: Any, field: str) -> date | None:
        # YAML reads an unquoted 2026-04-01 as a date already; JSON carries it as text.
        if isinstance(value, datetime):
            self.add("must be a date such as 2026-04-01, without a time", field)
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].*", value):
            self.add("must be a date such as 2026-04-01, without a time", field)
            return None
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                self.add(f"{value} is not a real date", field)
                return None
        self.add("must be a date such as 2026-04-01", field)
        return None

    def items(self, value: Any, field: str, *, empty_ok: bool = False) -> list[Any] | None:
        if not isinstance(value, list):
            self.add("must be a list", field)
            return None
        if not value and not empty_ok:
            self.add("must not be an empty list", field)
            return None
        if len(value) > MAX_ITEMS:
            self.add(f"has {len(value):,} entries; at most {MAX_ITEMS:,} are allowed", field)
            return None
        return value

    def mapping(self, value: Any, field: str, allowed: tuple[str, ...], required: tuple[str, ...],
                what: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(f"must be {what}, with the fields {', '.join(allowed)}", field)
            return None
        ok = True
        for key in value:
            if key not in allowed:
                self.add(f"is not a field of {what}; the fields are {', '.join(allowed)}", f"{field}.{key}")
                ok = False
        for key in required:
            if key not in value:
                self.add("is missing", f"{field}.{key}")
                ok = False
        return value if ok else None

    def unique_texts(self, value: Any, field: str, *, what: str, empty_ok: bool = False,
                     pattern: re.Pattern[str] | None = None, pattern_words: str = "") -> tuple[str, ...] | None:
        entries = self.items(value, field, empty_ok=empty_ok)
        if entries is None:
            return None
        result: list[str] = []
        ok = True
        for i, entry in enumerate(entries):
            at = f"{field}[{i}]"
            text = self.text(entry, at, limit=_FIELD_NAME_MAX)
            if text is None:
                ok = False
            elif pattern is not None and not pattern.fullmatch(text):
                self.add(f"{text!r} is not {pattern_words}", at)
                ok = False
            elif text in result:
                self.add(f"names {what} {text!r} twice", at)
                ok = False
            else:
                result.append(text)
        return tuple(result) if ok else None
