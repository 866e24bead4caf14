"""The validators and normalisers as DuckDB SQL expressions, for whole columns at once.

They are built from regular-expression matches, casts and integer arithmetic only (no Python functions
or lambdas inside DuckDB), so a million values check in well under a second on one thread. ``column_sql`` appears
several times in an expression: pass a column reference, not a costly expression.

Each mirrors the Python form in :mod:`civicshare.schemas.validators` exactly; the tests hold them to it.
"""

from __future__ import annotations

from civicshare.errors import UsageError
from civicshare.schemas import validators as v

# SPACES as an RE2 character-class body (RE2 reads these escapes itself; SQL strings do not).
_SQL_SPACES = " \\t\\r\\n\\x{00A0}"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _match(column: str, pattern: str) -> str:
    return f"regexp_full_match({column}, {_lit(pattern)})"


# Each validator is a list of tests that must all hold. Every test is NULL for a missing value and
# true or false for any other, and the tests are joined with least() rather than AND or CASE: DuckDB
# then computes a repeated part (a cast, NULLIF) once per row, where inside AND or CASE it would
# compute it at every mention. least() skips NULLs, hence the rule that a test is NULL only when the
# value is missing.

def _nhs(x: str) -> list[str]:
    # With P_i the number formed by the first i digits (an integer division of the whole number), the
    # weighted sum 10*d1 + 9*d2 + ... + 2*d9 is congruent mod 11 to sum((21 - 2i) * P_i) + 2 * P_9, so
    # no digit is taken apart. A check digit of 11 becomes 0; 10 matches no digit. A value that is
    # not 10 digits fails the match, so the cast's NULL for it is skipped.
    n = f"TRY_CAST({x} AS BIGINT)"
    prefixes = " + ".join(f"{21 - 2 * i} * ({n} // {10 ** (10 - i)})" for i in range(1, 9)) + f" + 2 * ({n} // 10)"
    return [_match(x, v.NHS_RE), f"(11 - ({prefixes}) % 11) % 11 = {n} % 10"]


def _iso_date(x: str) -> list[str]:
    # A value is an ISO date exactly when DuckDB reads it as a date and writes it back unchanged; the
    # length and first-digit tests keep the years to 1000-9999, as the Python form does.
    return [f"strlen({x}) = 10", f"{x} >= '1000'", f"coalesce(CAST(TRY_CAST({x} AS DATE) AS VARCHAR), '') = {x}"]


def _date_of_birth(x: str, today_sql: str) -> list[str]:
    # Age under 120 whole years is the same as being born after today less 120 years. ISO dates
    # compare as text in date order, so the bounds are compared as text.
    today = f"CAST({today_sql} AS DATE)"
    earliest = f"CAST(CAST({today} - INTERVAL {v.MAX_AGE_YEARS} YEAR + INTERVAL 1 DAY AS DATE) AS VARCHAR)"
    return [*_iso_date(x), f"{x} BETWEEN {earliest} AND CAST({today} AS VARCHAR)"]


def _tests(validator: str, x: str, today_sql: str) -> list[str]:
    if validator == v.NHS_NUMBER:
        return _nhs(x)
    if validator == v.NI_NUMBER:
        return [_match(x, v.NI_RE)]
    if validator == v.POSTCODE:
        return [_match(x, v.POSTCODE_RE)]
    if validator == v.UPRN:
        return [f"strlen({x}) <= {v.UPRN_MAX_DIGITS}", _match(x, v.UPRN_RE)]
    if validator == v.DATE:
        return _iso_date(x)
    if validator == v.DATE_OF_BIRTH:
        return _date_of_birth(x, today_sql)
    if validator == v.EMAIL:
        # The pattern is ASCII only, so bytes and characters count the same once it matches.
        return [_match(x, v.EMAIL_RE), f"strlen({x}) <= {v.EMAIL_MAX_LENGTH}"]
    return [_match(x, v.UK_PHONE_RE)]


def sql_valid(validator: str, column_sql: str, today_sql: str = "current_date") -> str:
    """A boolean SQL expression: true when the value is valid, false when not, NULL when missing (NULL or '').

    ``today_sql`` must not be NULL.
    """
    if validator not in v.VALIDATORS:
        raise UsageError(f"there is no validator {validator!r}; the validators are {', '.join(v.VALIDATORS)}")
    tests = _tests(validator, f"nullif({column_sql}, '')", f"({today_sql})")
    return tests[0] if len(tests) == 1 else "least(" + ", ".join(tests) + ")"


def _remove(c: str, characters: str) -> str:
    return f"regexp_replace({c}, {_lit('[' + characters + ']')}, '', 'g')"


def _ascii_upper(c: str) -> str:
    return f"translate({c}, {_lit(_LOWER)}, {_lit(_UPPER)})"


def sql_normalise(normaliser: str, column_sql: str) -> str:
    """A VARCHAR SQL expression giving what the named normaliser gives (NULL stays NULL)."""
    c = f"({column_sql})"
    if normaliser == "nhs_number":
        return _remove(c, _SQL_SPACES + "-")
    if normaliser == "ni_number":
        return _ascii_upper(_remove(c, _SQL_SPACES))
    if normaliser == "postcode":
        compact = _ascii_upper(_remove(c, _SQL_SPACES))
        return f"regexp_replace({compact}, '^([A-Z0-9]{{2,4}})([A-Z0-9]{{3}})$', '\\1 \\2')"
    if normaliser == "phone":
        text = _remove(f"regexp_replace({c}, '\\(0\\)', '', 'g')", _SQL_SPACES + "().-")
        for pattern, replacement in v.PHONE_STEPS:
            text = f"regexp_replace({text}, {_lit(pattern)}, {_lit(replacement)})"
        return text
    raise UsageError(f"there is no normaliser {normaliser!r}; the normalisers are {', '.join(v.NORMALISERS)}")
