"""Suggesting a mapping from a file's headers and a sample of its values, for a person to review.

Columns are matched to fields by name (the field's name, its title, and the names council systems
commonly use: Forename, Surname, DOB, NINO ...), then by what the values look like (a column of NHS
numbers is the NHS number whatever its header). Transforms are chosen from the values: dates like
03/04/1980 get ``date: dd/mm/yyyy``, spreadsheet serial numbers ``excel``, a "Name" column of two or
more words is split into first, middle and last names, postcodes and phone numbers are normalised.
Every guess carries a ``# REVIEW:`` comment saying why it was made. Values are never written into
the mapping or its comments.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from civicshare.schemas.model import Schema, SchemaField

SAMPLE_ROWS = 1000
# A column "looks like" something when at least this share of its non-empty sample values do.
MOSTLY = 0.8

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": ("forename", "forenames", "firstname", "givenname", "givennames", "christianname", "fname"),
    "middle_names": ("middlename", "middlenames", "othernames", "otherforenames"),
    "last_name": ("surname", "lastname", "familyname", "lname"),
    "date_of_birth": ("dob", "dateofbirth", "birthdate", "born", "birthday"),
    "ni_number": ("nino", "ni", "ninumber", "nationalinsurance", "nationalinsuranceno", "nationalinsurancenumber"),
    "nhs_number": ("nhs", "nhsno", "nhsnumber", "nhsnum"),
    "address_line_1": ("address1", "addressline1", "addr1", "line1", "address", "street", "houseandstreet"),
    "address_line_2": ("address2", "addressline2", "addr2", "line2", "locality"),
    "address_line_3": ("address3", "addressline3", "addr3", "line3"),
    "town": ("town", "city", "posttown", "towncity"),
    "postcode": ("postcode", "pcode", "postalcode", "postcd"),
    "uprn": ("uprn", "propertyuprn"),
    "phone": ("phone", "telephone", "tel", "telno", "telephoneno", "mobile", "phoneno", "phonenumber",
              "contactnumber", "contactno"),
    "email": ("email", "emailaddress", "mail"),
    "person_ref": ("personref", "personid", "clientid", "clientref", "customerref", "residentid", "personreference"),
    "reference": ("ref", "reference", "caseref", "casereference", "referenceno", "refno", "caseno", "casenumber"),
    "opened": ("opened", "startdate", "dateopened", "opendate", "referraldate", "start"),
    "closed": ("closed", "enddate", "dateclosed", "closedate", "end"),
    "status": ("status", "state", "casestatus"),
    "service": ("service", "servicename", "team"),
}
_FULL_NAME = ("name", "fullname", "clientname", "residentname", "personname", "customername", "applicantname")
_NAME_PARTS = {"first_name": "first", "middle_names": "middle", "last_name": "last"}

_PATTERNS = {
    "postcode": re.compile(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]? *[0-9][A-Za-z]{2}"),
    "nhs_number": re.compile(r"[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}"),
    "ni_number": re.compile(r"[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]"),
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    "phone": re.compile(r"(\+44 ?|0)[0-9 ()-]{9,14}"),
    "uprn": re.compile(r"[0-9]{6,12}"),
}
# Validators whose values a normalising transform brings into standard form.
_NORMALISING = {"postcode": "postcode", "nhs_number": "nhs_number", "ni_number": "ni_number", "uk_phone": "phone"}
_DATE = re.compile(r"([0-9]{1,4})([/.-])([0-9]{1,2})\2([0-9]{1,4})(?:[ T][0-9:.]+)?")
_SERIAL = re.compile(r"[0-9]{4,5}(\.[0-9]+)?")
_TIME_ONLY = re.compile(r"[ T][0-9]{1,2}:[0-9]{2}.*$")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


@dataclass
class _Choice:
    target: str
    sources: list[str]
    transforms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _values(rows: Sequence[Sequence[str | None]], index: int) -> list[str]:
    return [v.strip() for row in rows if index < len(row) and (v := row[index]) is not None and v.strip()]


def _mostly(values: list[str], pattern: re.Pattern[str]) -> bool:
    return bool(values) and sum(1 for v in values if pattern.fullmatch(v)) >= MOSTLY * len(values)


def date_formats(values: list[str]) -> tuple[list[str], str | None]:
    """The date formats that read most of ``values`` (most common first), and a note when the order of
    day and month is a guess."""
    formats: Counter[str] = Counter()
    day_first = month_first = ordered_by_guess = False
    for value in values:
        if _SERIAL.fullmatch(value) and 1 <= float(value) <= 60000:
            formats["excel"] += 1
            continue
        match = _DATE.fullmatch(value)
        if not match:
            continue
        a, sep, b, c = match.group(1), match.group(2), match.group(3), match.group(4)
        if len(a) == 4:
            formats[f"yyyy{sep}mm{sep}dd"] += 1
            continue
        year = "yyyy" if len(c) == 4 else "yy"
        ordered_by_guess = True
        day_first |= int(a) > 12
        month_first |= int(b) > 12
        formats[f"{{first}}{sep}{{second}}{sep}{year}"] += 1
    if not values or sum(formats.values()) < MOSTLY * len(values):
        return [], None
    note = None
    if month_first and not day_first:
        first, second = "mm", "dd"
        note = "the day comes second in some values, so these look like American dates (month first)"
    else:
        first, second = "dd", "mm"
        if ordered_by_guess and not day_first:
            note = "no value shows whether the day or the month comes first; day first (the UK order) is assumed"
    ordered = [f.format(first=first, second=second) for f, _ in formats.most_common()]
    return ordered, note


def _looks_like(values: list[str]) -> str | None:
    """The validator a column's values look like, if any (a date is told apart by date_formats)."""
    for name in ("nhs_number", "ni_number", "postcode", "email", "phone"):
        if _mostly(values, _PATTERNS[name]):
            return "uk_phone" if name == "phone" else name
    return None


def _full_names(values: list[str]) -> bool:
    """At least half the values have two or more words (some people have one name only)."""
    whole = re.compile(r"\S+(,?\s+\S+)+")
    return bool(values) and 2 * sum(1 for v in values if whole.fullmatch(v)) >= len(values)


def suggest_mapping(columns: Sequence[str], rows: Sequence[Sequence[str | None]], schema: Schema, *,
                    source_label: str = "the file") -> str:
    """A mapping (YAML text, ``# REVIEW:`` comments on every guess) from ``columns`` to ``schema``."""
    by_key: dict[str, str] = {}
    for f in schema.fields:
        for name in (f.name, f.title or "", *_SYNONYMS.get(f.name, ())):
            by_key.setdefault(_key(name), f.name)
    fields = {f.name: f for f in schema.fields}
    choices: dict[str, _Choice] = {}
    used: set[str] = set()
    samples = {c: _values(rows, i) for i, c in enumerate(columns)}

    # 1. By header.
    for column in columns:
        target = by_key.get(_key(column))
        if target is not None and target not in choices:
            choices[target] = _Choice(target, [column], notes=[f"matched by the header {column!r}"])
            used.add(column)
    # 2. A full name in one column.
    parts = [p for p in _NAME_PARTS if p in fields and p not in choices]
    for column in columns:
        if parts and column not in used and _key(column) in _FULL_NAME and _full_names(samples[column]):
            for part in parts:
                choices[part] = _Choice(part, [column], [f"{{split_name: {_NAME_PARTS[part]}}}"], notes=[
                    f"{column!r} holds whole names; split into first, middle and last ('SURNAME, Forenames' "
                    "and titles such as Mrs are understood)"])
            used.add(column)
            break
    # 3. By the values, for identifiers whatever their header.
    for column in columns:
        if column in used:
            continue
        kind = _looks_like(samples[column])
        target = next((f.name for f in schema.fields if f.validator == kind and f.name not in choices), None)
        if kind is not None and target is not None:
            choices[target] = _Choice(target, [column], notes=[f"the values of {column!r} look like {kind}"])
            used.add(column)
    for choice in choices.values():
        _pick_transforms(choice, fields[choice.target], samples[choice.sources[0]])
    return _render(schema, columns, choices, used, source_label, len(rows))


def _pick_transforms(choice: _Choice, target: SchemaField, values: list[str]) -> None:
    choice.transforms.insert(0, "trim")  # stray spaces are common in exports; blank cells become empty
    if target.type == "date" or target.validator in ("date", "date_of_birth"):
        formats, note = date_formats([_TIME_ONLY.sub("", v) for v in values])
        if formats:
            choice.transforms.append("{date: [" + ", ".join(formats) + "]}")
            choice.notes.append("dates read as " + " or ".join(formats) + (f"; {note}" if note else ""))
        elif values:
            choice.notes.append("the values are not dates in a format civicshare knows; add a date transform")
    normaliser = _NORMALISING.get(target.validator or "")
    if normaliser:
        choice.transforms.append(normaliser)
    if target.name in _NAME_PARTS and values and all(v.upper() == v for v in values):
        choice.transforms.append("title")
        choice.notes.append("names are in capitals; title case is applied")


def _render(schema: Schema, columns: Sequence[str], choices: dict[str, _Choice], used: set[str],
            source_label: str, sampled: int) -> str:
    lines = [
        f"# A mapping suggested by civicshare from {source_label} ({sampled:,} sample rows) into {schema.key}.",
        "# Check every line marked REVIEW, then import with:",
        f"#   civicshare import FILE --dataset NAME --schema {schema.name} --mapping THIS_FILE",
        "version: 1",
        f"schema: {schema.name}",
        "fields:",
    ]
    for f in schema.fields:
        choice = choices.get(f.name)
        if choice is None:
            need = "REVIEW: required, but no column matched it" if f.required else "no column matched it"
            lines.append(f"  # {f.name}: {{from: COLUMN}}  # {need}")
            continue
        source = ", ".join(json.dumps(s, ensure_ascii=False) for s in choice.sources)
        transforms = ", ".join(choice.transforms)
        lines.append(f"  # REVIEW: {'; '.join(choice.notes)}")
        lines.append(f"  {f.name}: {{from: {source}, transforms: [{transforms}]}}")
    unused = [c for c in columns if c not in used]
    if unused:
        lines.append("# Columns not mapped: " + ", ".join(json.dumps(c, ensure_ascii=False) for c in unused))
    return "\n".join(lines) + "\n"


def suggest_for_file(source: Path, schema: Schema, *, fmt: str | None = None, encoding: str = "auto",
                     label: str | None = None) -> str:
    """``suggest_mapping`` for a CSV, XLSX or JSON Lines file, from its first SAMPLE_ROWS rows (read in memory)."""
    from civicshare.holdings.sampling import sample_rows
    from civicshare.holdings.tabular import import_format

    name = label or Path(source).name
    # An upload held in memory has no file name of its own; its label (the original name) tells.
    fmt = fmt or (import_format(None, Path(label)) if label else None)
    columns, rows = sample_rows(source, fmt=fmt, encoding=encoding, label=name, limit=SAMPLE_ROWS)
    return suggest_mapping(columns, rows, schema, source_label=name)
