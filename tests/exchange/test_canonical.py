"""Canonical JSON: one byte spelling per value, strict reading, and the audit log's bytes unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.audit.entry import AuditEntry
from civicshare.canonical import canonical_json, parse_json
from civicshare.errors import InvalidInput

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


def former_audit_bytes(value: Any) -> bytes:
    """What audit/entry.py computed before canonical_json existed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_round_trip_and_same_bytes_as_the_audit_log_used(value: Any) -> None:
    data = canonical_json(value)
    assert parse_json(data) == value
    assert canonical_json(parse_json(data)) == data
    assert data == former_audit_bytes(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), json_values, min_size=2, max_size=6), st.randoms())
def test_key_order_does_not_matter(value: dict[str, Any], random: Any) -> None:
    keys = list(value)
    random.shuffle(keys)
    assert canonical_json({k: value[k] for k in keys}) == canonical_json(value)


def test_known_bytes() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é €"], "": {}}) == (
        '{"":{},"a":[true,null,"é €"],"b":1}'.encode())
    assert canonical_json(("x", -0)) == b'["x",0]'


def test_audit_entry_bytes_are_unchanged() -> None:
    entry = AuditEntry(datetime(2026, 11, 1, 9, 30, tzinfo=UTC), "cli:sam", "north-wold", "holding.view", "h_1",
                       "ok", {"rows": 3, "names": ["Zoë", "Ada"], "nested": {"b": None, "a": True}})
    record = {"v": 1, "time": "2026-11-01T09:30:00.000000Z", "actor": "cli:sam", "org": "north-wold",
              "action": "holding.view", "object": "h_1", "outcome": "ok", "details": entry.details}
    assert entry.canonical() == former_audit_bytes(record)


@pytest.mark.parametrize("value", [1.5, {"a": [1, 2.0]}, float("nan"), {1: "x"}, b"bytes", {"a": {1, 2}},
                                   datetime(2026, 1, 1), "lone \ud800 surrogate"])
def test_refuses_what_has_no_single_spelling(value: Any) -> None:
    with pytest.raises(InvalidInput):
        canonical_json(value)


@pytest.mark.parametrize(("text", "words"), [
    ('{"a": 1, "a": 2}', "twice"),
    ('{"a": 1.0}', "whole numbers"),
    ('{"a": 1e3}', "whole numbers"),
    ('{"a": NaN}', "not JSON"),
    ('[Infinity]', "not JSON"),
    ('{"a": ', "not valid JSON"),
    (b'{"a": "\xff"}', "not UTF-8"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_strict_reading(text: str | bytes, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_json(text)
