"""The transforms a mapping applies to a source column on its way into a schema field.

Each transform is checked once (:func:`parse_step`, which says in plain words what is wrong with it)
and then written as a DuckDB SQL expression over text (:func:`step_sql`), so a whole mapping runs as
one SELECT. Every value is text in and text out; NULL stays NULL. A value a transform cannot read
(a date in none of the formats) is kept as written, so the quality report flags it as invalid instead
of counting it as missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from civicshare.holdings.duck import sql_string

# Transform name -> the normaliser of schemas.validators it runs (in SQL).
NORMALISERS = {"postcode": "postcode", "phone": "phone", "nhs_number": "nhs_number", "ni_number": "ni_number"}
CASES = ("upper", "lower", "title")
NAME_PARTS = ("first", "middle", "last")
TRANSFORMS = ("trim", *CASES, "case", "split_name", "join", "date", *NORMALISERS, "lookup", "default")
EXCEL = "excel"
ISO = "yyyy-mm-dd"
# The largest Excel serial (31/12/9999); smaller positive numbers are days since 30/12/1899.
EXCEL_MAX = 2958465
_DATE_TOKENS = re.compile(r"yyyy|yy|mmmm|mmm|mm|m|dd|d|[/\-. ]")
_STRPTIME = {"yyyy": "%Y", "yy": "%y", "mmmm": "%B", "mmm": "%b", "mm": "%m", "m": "%m", "dd": "%d", "d": "%d"}
_TITLES = r"^(mr|mrs|ms|miss|mx|dr|rev|revd|prof|sir|dame|lady|lord)\.?\s+"
_TIME_PART = r"[ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"

Normalise = Callable[[str, str], str]


@dataclass(frozen=True)
class Step:
    """One checked transform: its name and its option in the form the SQL writer needs."""

    name: str
    option: Any = None


@dataclass(frozen=True)
class Context:
    """What the SQL writer needs from outside: today's date (two-digit years are taken as the most
    recent past year) and the SQL normalisers of :mod:`civicshare.schemas.validators`."""

    today: date
    normalise: Normalise | None = None


class BadStep(ValueError):
    """A transform that cannot be used, with the reason in plain words."""


def _scalar_text(value: Any, what: str) -> str:
    if isinstance(value, bool):
        raise BadStep(f"{what} reads as true or false in YAML (yes, no, on and off do too); put it in quotes, "
                      "such as 'yes', to mean the text")
    if not isinstance(value, str | int | float):
        raise BadStep(f"{what} must be a single value (text or a number)")
    return str(value)


def parse_step(item: Any) -> Step:
    """A transform as written in a mapping: a name (``trim``) or a one-key map (``date: dd/mm/yyyy``)."""
    if isinstance(item, str):
        name, option, has_option = item.strip(), None, False
    elif isinstance(item, dict) and len(item) == 1:
        name, option = next(iter(item.items()))
        name, has_option = str(name), True
    else:
        raise BadStep("a transform is a name such as trim, or one name with its option such as "
                      "'date: dd/mm/yyyy'")
    if name not in TRANSFORMS:
        raise BadStep(f"{name!r} is not a transform; the transforms are {', '.join(TRANSFORMS)}")
    if name in ("trim", *CASES, *NORMALISERS):
        if has_option and option is not None:
            raise BadStep(f"{name} takes no option; write it as '- {name}'")
        return Step(name)
    if not has_option:
        raise BadStep(_NEEDS_OPTION[name])
    return _PARSERS[name](option)


_NEEDS_OPTION = {
    "case": "case needs upper, lower or title, e.g. 'case: title'",
    "split_name": "split_name needs the part of the name to keep: first, middle or last",
    "join": "join needs the separator to put between the columns, e.g. \"join: ' '\"",
    "date": "date needs the formats to try, e.g. 'date: [dd/mm/yyyy, excel]'",
    "lookup": "lookup needs a map of values, e.g. 'lookup: {map: {M: male, F: female}}'",
    "default": "default needs the value to use when the source is empty",
}


def _case(option: Any) -> Step:
    if option not in CASES:
        raise BadStep(f"case must be upper, lower or title, not {option!r}")
    return Step(str(option))


def _split_name(option: Any) -> Step:
    if option not in NAME_PARTS:
        raise BadStep(f"split_name must be first, middle or last, not {option!r}")
    return Step("split_name", option)


def _join(option: Any) -> Step:
    if not isinstance(option, str):
        raise BadStep("join's separator must be text, e.g. \"join: ' '\"")
    return Step("join", option)


def date_format(fmt: str) -> str:
    """The strptime format for a date format such as ``dd/mm/yyyy``; BadStep if it is not one."""
    tokens = _DATE_TOKENS.findall(fmt)
    kinds = [t[0] for t in tokens if t[0] in "dmy"]
    if "".join(tokens) != fmt or sorted(kinds) != ["d", "m", "y"]:
        raise BadStep(f"{fmt!r} is not a date format: write it with dd, mm (or mmm for Jan), yyyy (or yy) and "
                      "separators, such as dd/mm/yyyy, or write excel for spreadsheet serial numbers")
    return "".join(_STRPTIME.get(t, t) for t in tokens)


def _date(option: Any) -> Step:
    formats = option if isinstance(option, list) else [option]
    if not formats or not all(isinstance(f, str) for f in formats):
        raise BadStep("date needs one format or a list of formats, e.g. 'date: [dd/mm/yyyy, excel]'")
    for fmt in formats:
        if fmt != EXCEL:
            date_format(fmt)
    return Step("date", tuple(formats))


def _lookup(option: Any) -> Step:
    if not isinstance(option, dict) or "map" not in option:
        raise BadStep(_NEEDS_OPTION["lookup"])
    unknown = sorted(set(option) - {"map", "default", "ignore_case"})
    if unknown:
        raise BadStep(f"lookup has no option {unknown[0]!r}; its options are map, default and ignore_case")
    table = option["map"]
    if not isinstance(table, dict) or not table:
        raise BadStep("lookup's map must list values and what each becomes, e.g. {M: male, F: female}")
    ignore_case = option.get("ignore_case", True)
    if not isinstance(ignore_case, bool):
        raise BadStep("lookup's ignore_case must be true or false")
    pairs = []
    for key, value in table.items():
        source = _scalar_text(key, "each value in lookup's map")
        pairs.append((source.casefold() if ignore_case else source,
                      None if value is None else _scalar_text(value, f"what {source!r} becomes")))
    if "default" in option and option["default"] is not None:
        default: tuple[str | None] | None = (_scalar_text(option["default"], "lookup's default"),)
    else:
        default = (None,) if "default" in option else None
    return Step("lookup", (tuple(pairs), default, ignore_case))


def _default(option: Any) -> Step:
    return Step("default", _scalar_text(option, "default"))


_PARSERS: dict[str, Callable[[Any], Step]] = {
    "case": _case, "split_name": _split_name, "join": _join, "date": _date, "lookup": _lookup,
    "default": _default,
}


# SQL -------------------------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return "NULL" if value is None else sql_string(value)


def title_case_sql(expr: str) -> str:
    """Capitalise each word, and each part of a hyphenated or O'Brien-style word."""
    def words(inner: str, sep: str, var: str) -> str:
        return (f"array_to_string(list_transform(string_split({inner}, {sql_string(sep)}), "
                f"lambda {var}: {{}}), {sql_string(sep)})")
    innermost = "upper(c[1]) || c[2:]"
    apostrophe = words("b", "'", "c").format(innermost)
    hyphen = words("a", "-", "b").format(apostrophe)
    return words(f"lower({expr})", " ", "a").format(hyphen)


def split_name_sql(expr: str, part: str) -> str:
    """A part of a full name: 'Zoë Anne Smith', 'SMITH, Zoë Anne' or 'Mrs Zoë Smith'.

    One word alone is taken as the last name; titles at the start are dropped.
    """
    clean = f"regexp_replace(trim(regexp_replace({expr}, '\\s+', ' ', 'g')), {sql_string(_TITLES)}, '', 'i')"
    comma = f"strpos({clean}, ',') > 0"
    surname_first = f"trim(split_part({clean}, ',', 1))"
    given = f"string_split(trim(substr({clean}, strpos({clean}, ',') + 1)), ' ')"
    words = f"string_split({clean}, ' ')"
    if part == "last":
        plain = f"{words}[-1]"
        result = f"CASE WHEN {comma} THEN {surname_first} ELSE {plain} END"
    elif part == "first":
        plain = f"CASE WHEN len({words}) > 1 THEN {words}[1] END"
        result = f"CASE WHEN {comma} THEN {given}[1] ELSE {plain} END"
    else:
        plain = f"array_to_string({words}[2:-2], ' ')"
        result = f"CASE WHEN {comma} THEN array_to_string({given}[2:], ' ') ELSE {plain} END"
    return f"nullif(trim({result}), '')"


def date_sql(expr: str, formats: tuple[str, ...], today: date) -> str:
    """The date as ISO yyyy-mm-dd from the first format that reads it; kept as written if none does."""
    value = f"regexp_replace(trim({expr}), {sql_string(_TIME_PART)}, '')"
    today_sql = f"DATE {sql_string(today.isoformat())}"
    tries = []
    for fmt in formats:
        if fmt == EXCEL:
            serial = f"TRY_CAST({value} AS DOUBLE)"
            tries.append(
                f"CASE WHEN regexp_full_match({value}, '[0-9]{{1,7}}(\\.[0-9]+)?') "
                f"AND {serial} BETWEEN 1 AND {EXCEL_MAX} THEN "
                f"strftime(DATE '1899-12-30' + CAST(floor({serial}) AS INTEGER), '%Y-%m-%d') END")
            continue
        parsed = f"CAST(try_strptime({value}, {sql_string(date_format(fmt))}) AS DATE)"
        if "yyyy" in fmt:
            # strptime's %Y also reads '59'; a four-digit year is what the format promises.
            parsed = f"(CASE WHEN year({parsed}) >= 1000 THEN {parsed} END)"
        else:
            # Two-digit years: the most recent past year (a birth in '59 is 1959, not 2059).
            parsed = f"(CASE WHEN {parsed} > {today_sql} THEN {parsed} - INTERVAL 100 YEAR ELSE {parsed} END)"
        tries.append(f"strftime({parsed}, '%Y-%m-%d')")
    return f"coalesce({', '.join(tries)}, {expr})"


def lookup_sql(expr: str, option: tuple[Any, ...]) -> str:
    pairs, default, ignore_case = option
    key = f"lower(trim({expr}))" if ignore_case else expr
    whens = " ".join(f"WHEN {sql_string(k)} THEN {_text(v)}" for k, v in pairs)
    otherwise = expr if default is None else _text(default[0])
    return f"(CASE WHEN {expr} IS NULL THEN NULL ELSE (CASE {key} {whens} ELSE {otherwise} END) END)"


def step_sql(step: Step, expr: str, ctx: Context) -> str:
    """The SQL for ``step`` applied to the text expression ``expr`` (join is done by the mapping)."""
    if step.name == "trim":
        return f"nullif(trim({expr}), '')"
    if step.name == "upper":
        return f"upper({expr})"
    if step.name == "lower":
        return f"lower({expr})"
    if step.name == "title":
        return title_case_sql(expr)
    if step.name == "split_name":
        return split_name_sql(expr, step.option)
    if step.name == "date":
        return date_sql(expr, step.option, ctx.today)
    if step.name in NORMALISERS:
        if ctx.normalise is None:
            raise RuntimeError("the SQL normalisers are not available")
        return ctx.normalise(NORMALISERS[step.name], expr)
    if step.name == "lookup":
        return lookup_sql(expr, step.option)
    if step.name == "default":
        return f"coalesce({expr}, {sql_string(step.option)})"
    raise ValueError(f"no SQL for transform {step.name!r}")  # join is handled by the mapping


def join_sql(columns: list[str], separator: str) -> str:
    """Several text columns joined, skipping empty ones."""
    parts = ", ".join(f"nullif(trim({c}), '')" for c in columns)
    return f"nullif(concat_ws({sql_string(separator)}, {parts}), '')"
