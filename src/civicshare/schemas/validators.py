"""UK identifier and field validators, and the normalisers that bring values into standard form.

Validators check a value as it is stored after mapping: the standard form that the normalisers write
(an NHS number is ten digits with no spaces, a postcode is upper case with one space, a phone number is
E.164 ``+44…``, a date is ISO ``yyyy-mm-dd``). So a dataset that passes is one any partner can use as is.

Every validator and normaliser exists twice: here in Python (one value at a time, with the reason in plain
words) and in :mod:`civicshare.schemas.validators_sql` as a DuckDB SQL expression (a whole column at
once). The tests check that both forms agree.

An empty value is missing, not invalid: ``check`` returns ``None`` for it, and the SQL form gives NULL.
Reasons never quote the value, because values are personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from civicshare.errors import UsageError

NHS_NUMBER = "nhs_number"
NI_NUMBER = "ni_number"
POSTCODE = "postcode"
UPRN = "uprn"
DATE = "date"
DATE_OF_BIRTH = "date_of_birth"
EMAIL = "email"
UK_PHONE = "uk_phone"

VALIDATORS: tuple[str, ...] = (NHS_NUMBER, NI_NUMBER, POSTCODE, UPRN, DATE, DATE_OF_BIRTH, EMAIL, UK_PHONE)
NORMALISERS: tuple[str, ...] = ("postcode", "phone", "nhs_number", "ni_number")

MAX_AGE_YEARS = 120

# The regular expressions below are shared with the SQL forms. They use only syntax that Python's re
# and DuckDB's RE2 read the same way (ASCII classes, no look-around) and are always matched in full.
NHS_RE = "[0-9]{10}"

# HMRC never issues D, F, I, Q, U or V as the first letter, nor D, F, I, O, Q, U or V as the second,
# nor the prefixes BG, GB, KN, NK, NT, TN and ZZ; the suffix is A, B, C or D.
NI_BAD_FIRST = "DFIQUV"
NI_BAD_SECOND = "DFIOQUV"
NI_BAD_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
NI_SHAPE_RE = "[A-Z]{2}[0-9]{6}[A-Z]"


def _ni_re() -> str:
    """One expression for every issued prefix, so the SQL form is a single cheap match."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    alternatives = []
    for first in letters:
        if first in NI_BAD_FIRST:
            continue
        seconds = "".join(s for s in letters if s not in NI_BAD_SECOND and first + s not in NI_BAD_PREFIXES)
        alternatives.append(f"{first}[{seconds}]")
    return "(" + "|".join(alternatives) + ")[0-9]{6}[A-D]"


NI_RE = _ni_re()

# Royal Mail's format: the outward code (A9, A99, A9A, AA9, AA99, AA9A, with the letters each position
# allows), one space, the inward code (a digit and two letters, never C, I, K, M, O or V); and GIR 0AA.
POSTCODE_RE = (
    "(GIR 0AA|[A-PR-UWYZ]([0-9]{1,2}|[A-HK-Y][0-9]{1,2}|[0-9][A-HJKPSTUW]|[A-HK-Y][0-9][ABEHMNPRVWXY])"
    " [0-9][ABD-HJLNP-UW-Z]{2})"
)
POSTCODE_LOOSE_RE = "[A-Z0-9]{2,4} [A-Z0-9]{3}"

UPRN_RE = "0*[1-9][0-9]*"
UPRN_MAX_DIGITS = 12

DATE_RE = "[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"

_EMAIL_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_RE = f"{_EMAIL_ATOM}(\\.{_EMAIL_ATOM})*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\\.)+[A-Za-z]{{2,}}"
EMAIL_MAX_LENGTH = 254

# E.164 UK numbers: +44 then 10 digits, or 9 for some 01 areas and 08 freephone numbers.
UK_PHONE_RE = "\\+44(1[0-9]{8,9}|[23579][0-9]{9}|8[0-9]{8,9})"

# Separators people type inside identifiers (including the no-break space spreadsheets insert).
SPACES = " \t\r\n\u00a0"
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _full(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda value: compiled.fullmatch(value) is not None


_nhs_shape = _full(NHS_RE)
_ni_shape = _full(NI_SHAPE_RE)
_ni_ok = _full(NI_RE)
_postcode_ok = _full(POSTCODE_RE)
_postcode_loose = _full(POSTCODE_LOOSE_RE)
_uprn_ok = _full(UPRN_RE)
_digits = _full("[0-9]+")
_date_shape = _full(DATE_RE)
_email_ok = _full(EMAIL_RE)
_phone_ok = _full(UK_PHONE_RE)


def nhs_check_digit(first_nine: str) -> int:
    """The modulus-11 check digit of the first nine digits; 10 means no valid number has them."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    return (11 - total % 11) % 11


def _check_nhs_number(value: str) -> str | None:
    if not _nhs_shape(value):
        if _nhs_shape(normalise_nhs_number(value)):
            return "has spaces or hyphens; an NHS number is stored as 10 digits (the nhs_number transform removes them)"
        return "is not 10 digits"
    expected = nhs_check_digit(value[:9])
    if expected == 10:
        return "is not a possible NHS number (its check digit would be 10)"
    if expected != int(value[9]):
        return "check digit is wrong"
    return None


def _check_ni_number(value: str) -> str | None:
    if not _ni_shape(value):
        if _ni_shape(normalise_ni_number(value)):
            return "is not in standard form: upper case with no spaces (the ni_number transform writes it so)"
        return "is not two letters, six digits and a letter"
    first, second, prefix, suffix = value[0], value[1], value[:2], value[8]
    if first in NI_BAD_FIRST:
        return f"first letter {first} is never issued"
    if second in NI_BAD_SECOND:
        return f"second letter {second} is never issued"
    if prefix in NI_BAD_PREFIXES:
        return f"prefix {prefix} is never issued"
    if suffix not in "ABCD":
        return f"suffix {suffix} is not A, B, C or D"
    return None


def _check_postcode(value: str) -> str | None:
    if _postcode_ok(value):
        return None
    normalised = normalise_postcode(value)
    if normalised != value and _postcode_ok(normalised):
        return "is not in standard form: upper case with one space before the last three characters"
    if _postcode_loose(normalised):
        return "is not a UK postcode (a letter or digit is in a position no postcode uses)"
    return "is not a UK postcode"


def _check_uprn(value: str) -> str | None:
    if not _digits(value):
        return "is not a number (a UPRN is 1 to 12 digits)"
    if len(value) > UPRN_MAX_DIGITS:
        return "has more than 12 digits"
    if not _uprn_ok(value):
        return "is zero"
    return None


def _parse_date(value: str) -> date | None:
    if not _date_shape(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _check_date(value: str) -> str | None:
    if not _date_shape(value):
        return "is not a date written yyyy-mm-dd"
    if _parse_date(value) is None:
        return "is not a real date"
    return None


def age_on(born: date, today: date) -> int:
    """Whole years from ``born`` to ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _check_date_of_birth(value: str, today: date) -> str | None:
    reason = _check_date(value)
    if reason:
        return reason
    born = _parse_date(value)
    assert born is not None
    if born > today:
        return "is in the future"
    if age_on(born, today) >= MAX_AGE_YEARS:
        return f"gives an age of {MAX_AGE_YEARS} or more"
    return None


def _check_email(value: str) -> str | None:
    if len(value) > EMAIL_MAX_LENGTH:
        return "is longer than 254 characters"
    if not _email_ok(value):
        return "is not an e-mail address"
    return None


def _check_uk_phone(value: str) -> str | None:
    if _phone_ok(value):
        return None
    if _phone_ok(normalise_phone(value)):
        return "is not in standard form +44… with no spaces (the phone transform writes it so)"
    return "is not a UK phone number"


def check(validator: str, value: str | None, *, today: date | None = None) -> str | None:
    """Why ``value`` fails ``validator``, in plain words; ``None`` when it is valid or missing (empty).

    ``today`` is needed by ``date_of_birth`` (time is injected, never read here).
    """
    if validator not in VALIDATORS:
        raise UsageError(f"there is no validator {validator!r}; the validators are {', '.join(VALIDATORS)}")
    if value is None or value == "":
        return None
    if validator == NHS_NUMBER:
        return _check_nhs_number(value)
    if validator == NI_NUMBER:
        return _check_ni_number(value)
    if validator == POSTCODE:
        return _check_postcode(value)
    if validator == UPRN:
        return _check_uprn(value)
    if validator == DATE:
        return _check_date(value)
    if validator == DATE_OF_BIRTH:
        if today is None:
            raise UsageError("checking a date of birth needs today's date")
        return _check_date_of_birth(value, today)
    if validator == EMAIL:
        return _check_email(value)
    return _check_uk_phone(value)


# Normalisers. Each is idempotent (normalise(normalise(x)) == normalise(x)) and touches only ASCII
# letters and the separators in SPACES, so the SQL forms can match them exactly.

_SPACES_RE = re.compile("[" + SPACES + "]")
_NHS_SEPARATORS_RE = re.compile("[" + SPACES + "-]")
_PHONE_TRUNK_RE = re.compile(r"\(0\)")
_PHONE_SEPARATORS_RE = re.compile("[" + SPACES + "().-]")
_POSTCODE_SPLIT_RE = re.compile("^([A-Z0-9]{2,4})([A-Z0-9]{3})$")

# Applied in order, each at most once; shared with the SQL form.
PHONE_STEPS: tuple[tuple[str, str], ...] = (
    ("^00", "+"),  # international prefix
    ("^\\+440+", "+44"),  # +44 (0)20… written without the brackets
    ("^0([1-9][0-9]{7,9})$", "+44\\1"),  # national form
    ("^(44[1-9][0-9]{7,9})$", "+\\1"),  # country code without the plus
    ("^([1-35-9][0-9]{7,9})$", "+44\\1"),  # a spreadsheet dropped the leading zero
)
_PHONE_STEPS_RE = tuple((re.compile(pattern), replacement) for pattern, replacement in PHONE_STEPS)


def ascii_upper(value: str) -> str:
    return value.translate(_ASCII_UPPER)


def normalise_nhs_number(value: str) -> str:
    """Remove spaces and hyphens: ``943 476 5919`` -> ``9434765919``."""
    return _NHS_SEPARATORS_RE.sub("", value)


def normalise_ni_number(value: str) -> str:
    """Upper case, no spaces: ``ab 12 34 56 c`` -> ``AB123456C``."""
    return ascii_upper(_SPACES_RE.sub("", value))


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code: ``sw1a1aa`` -> ``SW1A 1AA``."""
    compact = ascii_upper(_SPACES_RE.sub("", value))
    return _POSTCODE_SPLIT_RE.sub("\\1 \\2", compact, count=1)


def normalise_phone(value: str) -> str:
    """E.164 for UK numbers: ``01632 960 001``, ``+44 (0)1632 960001`` -> ``+441632960001``.

    Numbers that are not recognisably UK are left with only their separators removed.
    """
    text = _PHONE_SEPARATORS_RE.sub("", _PHONE_TRUNK_RE.sub("", value))
    for pattern, replacement in _PHONE_STEPS_RE:
        text = pattern.sub(replacement, text, count=1)
    return text


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "postcode": normalise_postcode,
    "phone": normalise_phone,
    "nhs_number": normalise_nhs_number,
    "ni_number": normalise_ni_number,
}


def normalise(normaliser: str, value: str) -> str:
    """Apply the normaliser named ``normaliser`` (one of :data:`NORMALISERS`)."""
    try:
        function = _NORMALISERS[normaliser]
    except KeyError:
        raise UsageError(
            f"there is no normaliser {normaliser!r}; the normalisers are {', '.join(NORMALISERS)}"
        ) from None
    return function(value)
