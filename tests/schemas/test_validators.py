"""Known-good and known-bad values for every validator, through both the Python and the SQL forms."""

from __future__ import annotations

from datetime import date

import pytest

from civicshare.errors import UsageError
from civicshare.schemas.validators import VALIDATORS, check, nhs_check_digit, normalise
from civicshare.schemas.validators_sql import sql_normalise, sql_valid
from tests.schemas.sqlcheck import normalise_in_sql, valid_in_sql

TODAY = date(2026, 11, 22)

# (validator, value, reason or None). A reason is matched as a substring of check()'s answer.
VECTORS: list[tuple[str, str, str | None]] = [
    # NHS numbers: 10 digits, modulus-11 check digit.
    ("nhs_number", "9434765919", None),
    ("nhs_number", "4000000020", None),  # 11 -> 0
    ("nhs_number", "4000000160", None),  # 11 -> 0
    ("nhs_number", "4000000021", "check digit is wrong"),
    ("nhs_number", "9434765918", "check digit is wrong"),
    ("nhs_number", "4000000080", "check digit would be 10"),
    ("nhs_number", "4000000089", "check digit would be 10"),
    ("nhs_number", "4000000110", "check digit would be 10"),
    ("nhs_number", "943 476 5919", "has spaces or hyphens"),
    ("nhs_number", "943-476-5919", "has spaces or hyphens"),
    ("nhs_number", "943476591", "is not 10 digits"),
    ("nhs_number", "94347659190", "is not 10 digits"),
    ("nhs_number", "943476591X", "is not 10 digits"),
    ("nhs_number", "９４３４７６５９１９", "is not 10 digits"),  # full-width digits are not digits here
    # National Insurance numbers.
    ("ni_number", "AB123456C", None),
    ("ni_number", "JG103759A", None),
    ("ni_number", "OA123456D", None),
    ("ni_number", "ab123456c", "standard form"),
    ("ni_number", "AB 12 34 56 C", "standard form"),
    ("ni_number", "AB123456", "is not two letters, six digits and a letter"),
    ("ni_number", "A1234567C", "is not two letters, six digits and a letter"),
    ("ni_number", "AB123456E", "suffix E is not A, B, C or D"),
    ("ni_number", "DA123456A", "first letter D is never issued"),
    ("ni_number", "FA123456A", "first letter F is never issued"),
    ("ni_number", "IA123456A", "first letter I is never issued"),
    ("ni_number", "QA123456A", "first letter Q is never issued"),
    ("ni_number", "UA123456A", "first letter U is never issued"),
    ("ni_number", "VA123456A", "first letter V is never issued"),
    ("ni_number", "AD123456A", "second letter D is never issued"),
    ("ni_number", "AF123456A", "second letter F is never issued"),
    ("ni_number", "AI123456A", "second letter I is never issued"),
    ("ni_number", "AO123456A", "second letter O is never issued"),
    ("ni_number", "AQ123456A", "second letter Q is never issued"),
    ("ni_number", "AU123456A", "second letter U is never issued"),
    ("ni_number", "AV123456A", "second letter V is never issued"),
    ("ni_number", "BG123456A", "prefix BG is never issued"),
    ("ni_number", "GB123456A", "prefix GB is never issued"),
    ("ni_number", "KN123456A", "prefix KN is never issued"),
    ("ni_number", "NK123456A", "prefix NK is never issued"),
    ("ni_number", "NT123456A", "prefix NT is never issued"),
    ("ni_number", "TN123456A", "prefix TN is never issued"),
    ("ni_number", "ZZ123456A", "prefix ZZ is never issued"),
    # Postcodes, every outward shape.
    ("postcode", "M1 1AE", None),  # A9 9AA
    ("postcode", "B33 8TH", None),  # A99 9AA
    ("postcode", "W1A 0AX", None),  # A9A 9AA
    ("postcode", "CR2 6XH", None),  # AA9 9AA
    ("postcode", "DN55 1PT", None),  # AA99 9AA
    ("postcode", "EC1A 1BB", None),  # AA9A 9AA
    ("postcode", "SW1A 2AA", None),
    ("postcode", "GIR 0AA", None),
    ("postcode", "sw1a 2aa", "standard form"),
    ("postcode", "SW1A2AA", "standard form"),
    ("postcode", "SW1A  2AA", "standard form"),
    ("postcode", "QA1 1AA", "a position no postcode uses"),  # Q never first
    ("postcode", "AI1 1AA", "a position no postcode uses"),  # I never second
    ("postcode", "SW1A 1CA", "a position no postcode uses"),  # C never in the inward code
    ("postcode", "SW1A 1AM", "a position no postcode uses"),
    ("postcode", "12345", "is not a UK postcode"),
    ("postcode", "SW1A", "is not a UK postcode"),
    ("postcode", "NOT KNOWN", "is not a UK postcode"),
    # UPRNs: 1 to 12 digits.
    ("uprn", "1", None),
    ("uprn", "100023336956", None),
    ("uprn", "000100023336", None),
    ("uprn", "1000233369561", "more than 12 digits"),
    ("uprn", "0", "is zero"),
    ("uprn", "000000000000", "is zero"),
    ("uprn", "10002333695A", "is not a number"),
    ("uprn", "-1", "is not a number"),
    ("uprn", "1.0", "is not a number"),
    # Dates: ISO, real.
    ("date", "2024-02-29", None),
    ("date", "1000-01-01", None),
    ("date", "9999-12-31", None),
    ("date", "2023-02-29", "is not a real date"),
    ("date", "2023-04-31", "is not a real date"),
    ("date", "2023-13-01", "is not a real date"),
    ("date", "2023-00-10", "is not a real date"),
    ("date", "0999-12-31", "yyyy-mm-dd"),
    ("date", "03/04/1980", "yyyy-mm-dd"),
    ("date", "1980-4-3", "yyyy-mm-dd"),
    ("date", "1980-04-03 ", "yyyy-mm-dd"),
    ("date", "1980-04-03T00:00:00", "yyyy-mm-dd"),
    ("date", "19800403", "yyyy-mm-dd"),
    # Dates of birth: real, not in the future, age under 120 (today is 2026-11-22).
    ("date_of_birth", "1980-04-03", None),
    ("date_of_birth", "2026-11-22", None),  # born today
    ("date_of_birth", "1906-11-23", None),  # 119 today, 120 tomorrow
    ("date_of_birth", "1906-11-22", "an age of 120 or more"),
    ("date_of_birth", "1850-01-01", "an age of 120 or more"),
    ("date_of_birth", "2026-11-23", "is in the future"),
    ("date_of_birth", "2031-01-01", "is in the future"),
    ("date_of_birth", "1980-02-30", "is not a real date"),
    ("date_of_birth", "03/04/1980", "yyyy-mm-dd"),
    # E-mail addresses.
    ("email", "someone@example.gov.uk", None),
    ("email", "first.last+tag@council-name.example.org", None),
    ("email", "o'brien@example.com", None),
    ("email", "someone@example", "is not an e-mail address"),
    ("email", "someone.example.com", "is not an e-mail address"),
    ("email", "some one@example.com", "is not an e-mail address"),
    ("email", ".someone@example.com", "is not an e-mail address"),
    ("email", "some..one@example.com", "is not an e-mail address"),
    ("email", "someone@-example.com", "is not an e-mail address"),
    ("email", "someone@example.c", "is not an e-mail address"),
    ("email", "a" * 250 + "@example.com", "longer than 254"),
    # UK phone numbers in E.164.
    ("uk_phone", "+447700900123", None),
    ("uk_phone", "+441632960001", None),
    ("uk_phone", "+44169772345", None),  # a nine-digit 01 number
    ("uk_phone", "+442079460000", None),
    ("uk_phone", "+443001234567", None),
    ("uk_phone", "+44800123456", None),  # nine-digit freephone
    ("uk_phone", "07700 900123", "standard form"),
    ("uk_phone", "+44 (0)20 7946 0000", "standard form"),
    ("uk_phone", "+4477009001234", "is not a UK phone number"),
    ("uk_phone", "+444700900123", "is not a UK phone number"),  # 04 is not used
    ("uk_phone", "+447700", "is not a UK phone number"),
    ("uk_phone", "+15551234567", "is not a UK phone number"),
    ("uk_phone", "phone me", "is not a UK phone number"),
]


def test_the_vectors_cover_every_validator_with_good_and_bad_values() -> None:
    for validator in VALIDATORS:
        reasons = [reason for name, _, reason in VECTORS if name == validator]
        assert None in reasons, validator
        assert any(reasons), validator


def test_nhs_check_digit_edge_cases_are_what_the_vectors_say() -> None:
    assert nhs_check_digit("943476591") == 9
    assert nhs_check_digit("400000002") == 0  # 11 becomes 0
    assert nhs_check_digit("400000016") == 0
    assert nhs_check_digit("400000008") == 10  # never issued
    assert nhs_check_digit("400000011") == 10


@pytest.mark.parametrize(("validator", "value", "reason"), VECTORS)
def test_python_form(validator: str, value: str, reason: str | None) -> None:
    answer = check(validator, value, today=TODAY)
    if reason is None:
        assert answer is None
    else:
        assert answer is not None and reason in answer


@pytest.mark.parametrize("validator", VALIDATORS)
def test_sql_form_gives_the_same_answers(validator: str) -> None:
    values = [value for name, value, _ in VECTORS if name == validator]
    expected = [reason is None for name, _, reason in VECTORS if name == validator]
    assert valid_in_sql(validator, values, TODAY) == expected


@pytest.mark.parametrize("validator", VALIDATORS)
def test_missing_is_neither_valid_nor_invalid(validator: str) -> None:
    assert check(validator, "", today=TODAY) is None
    assert check(validator, None, today=TODAY) is None
    assert valid_in_sql(validator, ["", None], TODAY) == [None, None]


def test_reasons_never_quote_the_value() -> None:
    for validator, value, reason in VECTORS:
        answer = check(validator, value, today=TODAY)
        if reason is not None and len(value) > 3:
            assert answer is not None and value not in answer


def test_date_of_birth_needs_today() -> None:
    with pytest.raises(UsageError, match="today"):
        check("date_of_birth", "1980-04-03")


def test_date_of_birth_in_sql_uses_the_date_it_is_given() -> None:
    assert valid_in_sql("date_of_birth", ["2026-11-23"], date(2026, 11, 23)) == [True]
    assert valid_in_sql("date_of_birth", ["2026-11-23"], date(2026, 11, 22)) == [False]


@pytest.mark.parametrize(
    ("born", "today", "valid"),
    [
        ("1908-02-29", date(2028, 2, 28), True),  # 119 until the day after 28 February
        ("1908-02-29", date(2028, 2, 29), False),
        ("1907-02-28", date(2027, 2, 27), True),
        ("1907-02-28", date(2027, 2, 28), False),
        ("1906-03-01", date(2026, 2, 28), True),
        ("1906-03-01", date(2026, 3, 1), False),
    ],
)
def test_age_limit_around_leap_days(born: str, today: date, valid: bool) -> None:
    assert (check("date_of_birth", born, today=today) is None) is valid
    assert valid_in_sql("date_of_birth", [born], today) == [valid]


def test_unknown_validator_and_normaliser_are_refused_with_the_list() -> None:
    with pytest.raises(UsageError, match="nhs_number"):
        check("passport", "123")
    with pytest.raises(UsageError, match="nhs_number"):
        sql_valid("passport", "x")
    with pytest.raises(UsageError, match="postcode"):
        normalise("passport", "x")
    with pytest.raises(UsageError, match="postcode"):
        sql_normalise("passport", "x")


NORMALISED: list[tuple[str, str, str]] = [
    ("postcode", "sw1a1aa", "SW1A 1AA"),
    ("postcode", " sw1a  1aa ", "SW1A 1AA"),
    ("postcode", "m11ae", "M1 1AE"),
    ("postcode", "Dn55\u00a01pt", "DN55 1PT"),
    ("postcode", "not known", "NOTKNOWN"),
    ("nhs_number", "943 476 5919", "9434765919"),
    ("nhs_number", "943-476-5919", "9434765919"),
    ("nhs_number", " 9434765919\t", "9434765919"),
    ("ni_number", "ab 12 34 56 c", "AB123456C"),
    ("ni_number", " AB123456C ", "AB123456C"),
    ("phone", "07700 900123", "+447700900123"),
    ("phone", "07700-900-123", "+447700900123"),
    ("phone", "(01632) 960001", "+441632960001"),
    ("phone", "+44 (0)20 7946 0000", "+442079460000"),
    ("phone", "+44 020 7946 0000", "+442079460000"),
    ("phone", "0044 7700 900123", "+447700900123"),
    ("phone", "447700900123", "+447700900123"),
    ("phone", "7700900123", "+447700900123"),  # a spreadsheet dropped the leading zero
    ("phone", "+1 555 123 4567", "+15551234567"),
    ("phone", "ask at reception", "askatreception"),
]


@pytest.mark.parametrize(("normaliser", "raw", "expected"), NORMALISED)
def test_normalisers(normaliser: str, raw: str, expected: str) -> None:
    assert normalise(normaliser, raw) == expected
    assert normalise_in_sql(normaliser, [raw]) == [expected]


def test_normalised_values_pass_their_validators() -> None:
    validator_of = {"postcode": "postcode", "nhs_number": "nhs_number", "ni_number": "ni_number", "phone": "uk_phone"}
    unrecognisable = {"not known", "+1 555 123 4567", "ask at reception"}
    for normaliser, raw, _ in NORMALISED:
        if raw in unrecognisable:
            continue
        assert check(validator_of[normaliser], normalise(normaliser, raw), today=TODAY) is None, raw


def test_sql_normalisers_keep_null() -> None:
    for normaliser in ("postcode", "phone", "nhs_number", "ni_number"):
        assert normalise_in_sql(normaliser, [None, ""]) == [None, ""]
