"""Canonical JSON: the one byte spelling of a value that is hashed or signed.

Sorted keys, no spaces, UTF-8 without escapes (RFC 8785 JCS for the values we allow). Floats are
refused: their decimal spelling differs between languages, so a partner could not reproduce the bytes.
``parse_json`` is the strict reader for documents that arrive from outside.
"""

from __future__ import annotations

import json
from typing import Any

from civicshare.errors import InvalidInput


def check_json(value: Any, path: str) -> None:
    """Refuse anything canonical JSON cannot spell the same way everywhere, naming where it is."""
    # bool is a subclass of int, so whole numbers and booleans pass together.
    if value is None or isinstance(value, str | int):
        return
    if isinstance(value, float):
        raise InvalidInput(f"{path} is a number with a fraction; signed documents carry whole numbers only.")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path} has a key that is not text ({key!r}).")
            check_json(item, f"{path}.{key}")
        return
    raise InvalidInput(f"{path} holds a {type(value).__name__}; only text, whole numbers, booleans, null, "
                       "lists and objects can be signed.")


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of ``obj``; InvalidInput for floats, non-text keys or other types."""
    try:
        check_json(obj, "the value")
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise InvalidInput("The value is nested too deeply.") from None
    except UnicodeEncodeError:
        # Only lone surrogates get here: they have no UTF-8 spelling at all.
        raise InvalidInput("The value holds text that is not valid Unicode.") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins, so a partner could read a different document than we did.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(f"The JSON has the key {key!r} twice.")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise InvalidInput(f"The JSON holds the number {text}; signed documents carry whole numbers only.")


def _no_constant(text: str) -> Any:
    raise InvalidInput(f"The JSON holds {text}, which is not JSON.")


def parse_json(text: str | bytes) -> Any:
    """Read JSON strictly: no duplicate keys, no fractions, no NaN or Infinity, UTF-8 only."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The document is not UTF-8 text.") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                          parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"The document is not valid JSON: {exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}.") from None
    except RecursionError:
        raise InvalidInput("The document is nested too deeply.") from None
