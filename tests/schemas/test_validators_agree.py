"""Hypothesis: the SQL and Python forms agree, and the normalisers are idempotent and keep valid values."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicshare.schemas import validators as v
from civicshare.schemas.validators import check, nhs_check_digit, normalise
from tests.schemas.sqlcheck import normalise_in_sql, valid_in_sql

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# DuckDB strings are UTF-8 without NUL, so no NUL and no lone surrogates; everything else is fair game.
any_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)
digits = st.text(alphabet="0123456789", min_size=1, max_size=13)
separators = st.sampled_from(["", " ", "-", "\t", "\u00a0", "  "])


@st.composite
def nhs_like(draw: st.DrawFn) -> str:
    first_nine = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    check_digit = nhs_check_digit(first_nine)
    last = str(check_digit % 10) if draw(st.booleans()) else draw(st.sampled_from("0123456789"))
    text = first_nine + last
    if draw(st.booleans()):
        gap = draw(separators)
        text = text[:3] + gap + text[3:6] + gap + text[6:]
    return text


@st.composite
def ni_like(draw: st.DrawFn) -> str:
    letters = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcz")
    body = draw(st.text(alphabet="0123456789", min_size=5, max_size=7))
    text = draw(letters) + draw(letters) + body + draw(letters)
    return text if draw(st.booleans()) else draw(separators).join([text[:2], text[2:4], text[4:]])


@st.composite
def postcode_like(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        text = draw(st.from_regex(v.POSTCODE_RE, fullmatch=True))
    else:
        text = draw(st.from_regex(v.POSTCODE_LOOSE_RE, fullmatch=True))
    if draw(st.booleans()):
        text = text.lower().replace(" ", draw(separators))
    return text


iso_dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat)
near_dates = st.dates(min_value=date(1880, 1, 1), max_value=date(2040, 12, 31)).map(date.isoformat)
date_shaped = st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)
phone_like = st.one_of(
    st.from_regex(v.UK_PHONE_RE, fullmatch=True),
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(["+44", "0", "+440", "44", "0044", "+1", ""]),
              st.text(alphabet="0123456789 ()-.", max_size=13)),
)

STRUCTURED = {
    "nhs_number": st.one_of(nhs_like(), digits),
    "ni_number": st.one_of(ni_like(), st.from_regex(v.NI_RE, fullmatch=True)),
    "postcode": postcode_like(),
    "uprn": st.one_of(digits, st.from_regex(v.UPRN_RE, fullmatch=True)),
    "date": st.one_of(iso_dates, date_shaped),
    "date_of_birth": st.one_of(near_dates, date_shaped),
    "email": st.one_of(st.from_regex(v.EMAIL_RE, fullmatch=True),
                       st.text(alphabet="ab.@-_+'9", max_size=12)),
    "uk_phone": phone_like,
}


def _agree(validator: str, values: list[str], today: date) -> None:
    in_python = [None if value == "" else check(validator, value, today=today) is None for value in values]
    assert valid_in_sql(validator, list(values), today) == in_python


@SETTINGS
@given(st.sampled_from(v.VALIDATORS), st.lists(any_text, max_size=20), st.dates(date(1990, 1, 1), date(2100, 1, 1)))
def test_sql_and_python_agree_on_any_text(validator: str, values: list[str], today: date) -> None:
    _agree(validator, values, today)


@SETTINGS
@given(st.data(), st.sampled_from(v.VALIDATORS), st.dates(date(1990, 1, 1), date(2100, 1, 1)))
def test_sql_and_python_agree_on_structured_values(data: st.DataObject, validator: str, today: date) -> None:
    values = data.draw(st.lists(STRUCTURED[validator], min_size=1, max_size=20))
    _agree(validator, values, today)


NORMALISER_INPUTS = {
    "postcode": st.one_of(postcode_like(), any_text),
    "phone": st.one_of(phone_like, any_text),
    "nhs_number": st.one_of(nhs_like(), any_text),
    "ni_number": st.one_of(ni_like(), any_text),
}
VALIDATOR_OF = {"postcode": "postcode", "phone": "uk_phone", "nhs_number": "nhs_number", "ni_number": "ni_number"}


@SETTINGS
@given(st.data(), st.sampled_from(v.NORMALISERS))
def test_sql_and_python_normalisers_agree(data: st.DataObject, normaliser: str) -> None:
    values = data.draw(st.lists(NORMALISER_INPUTS[normaliser], min_size=1, max_size=20))
    assert normalise_in_sql(normaliser, list(values)) == [normalise(normaliser, value) for value in values]


@SETTINGS
@given(st.data(), st.sampled_from(v.NORMALISERS))
def test_normalisers_are_idempotent(data: st.DataObject, normaliser: str) -> None:
    value = data.draw(NORMALISER_INPUTS[normaliser])
    once = normalise(normaliser, value)
    assert normalise(normaliser, once) == once


@SETTINGS
@given(st.data(), st.sampled_from(v.NORMALISERS))
def test_valid_values_stay_valid_and_unchanged(data: st.DataObject, normaliser: str) -> None:
    validator = VALIDATOR_OF[normaliser]
    value = data.draw(STRUCTURED[validator])
    if value and check(validator, value) is None:
        assert normalise(normaliser, value) == value
