"""Reading an agreement file: YAML (what people write) or JSON (what programs write).

YAML is read through civicshare.yamltext: the safe loader only (dates kept as text), with every
field's line, and a key written twice refused, because parsers disagree on which one wins and
every party must read the same agreement.
"""

from __future__ import annotations

from typing import Any

import yaml

from civicshare.agreements.model import MAX_AGREEMENT_BYTES, Agreement
from civicshare.agreements.validate import check_agreement
from civicshare.canonical import parse_json
from civicshare.errors import InvalidInput, Problem, TooLarge
from civicshare.yamltext import TextDatesLoader, line_map

YAML, JSON = "yaml", "json"


def parse_agreement(text: str | bytes, *, filename: str | None = None, fmt: str | None = None,
                    org_id: str | None = None) -> Agreement:
    """Read and check an agreement; InvalidInput lists every problem with its field path and line.

    ``fmt`` is ``yaml`` or ``json``; left out, a ``.json`` file name or text starting with ``{`` means JSON.
    """
    body, lines = load_document(text, filename=filename, fmt=fmt)
    return check_agreement(body, lines=lines, filename=filename, org_id=org_id)


def load_document(text: str | bytes, *, filename: str | None = None,
                  fmt: str | None = None) -> tuple[Any, dict[str, int]]:
    """The document's value and a map of field paths to line numbers (1-based)."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
    if size > MAX_AGREEMENT_BYTES:
        raise TooLarge(f"This agreement is {size:,} bytes; an agreement file is never more than "
                       f"{MAX_AGREEMENT_BYTES:,}.")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The agreement is not UTF-8 text.",
                               problems=[Problem("is not UTF-8 text", file=filename)]) from None
    text = text.removeprefix("\ufeff")
    if fmt is None:
        fmt = JSON if (filename or "").lower().endswith(".json") or text.lstrip().startswith("{") else YAML
    if fmt == JSON:
        body = parse_json(text)
        try:
            lines, _faults = line_map(text)
        except yaml.YAMLError:
            lines = {}  # valid JSON that YAML 1.1 cannot compose: the problems go without line numbers
        return body, lines
    if fmt != YAML:
        raise InvalidInput(f"Unknown agreement format {fmt!r}: use yaml or json.")
    try:
        lines, faults = line_map(text)
        if faults:
            raise InvalidInput("The agreement writes a field twice, or uses YAML aliases", problems=[
                Problem(message, file=filename, line=line, field=path) for path, line, message in faults])
        body = yaml.load(text, Loader=TextDatesLoader)  # noqa: S506 - the safe loader, dates as text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"The agreement is not valid YAML: {problem}",
                           problems=[Problem(f"is not valid YAML: {problem}", file=filename, line=line)]) from None
    except RecursionError:
        raise InvalidInput("The agreement is nested too deeply.") from None
    return body, lines


def to_yaml(agreement: Agreement) -> str:
    """The agreement as YAML, fields in reading order; reads back to the same agreement and hash."""
    return str(yaml.safe_dump(agreement.to_body(), sort_keys=False, allow_unicode=True, width=100))
