"""Reading an agreement file: YAML (what people write) or JSON (what programs write).

YAML is read with PyYAML's safe loader only (dates kept as text), so a file cannot make objects. The same text is also
composed into YAML nodes, which know their line numbers: that is how each problem names its line. A
key written twice is refused, because parsers disagree on which one wins and every party must read
the same agreement.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from civicshare.agreements.model import MAX_AGREEMENT_BYTES, Agreement
from civicshare.agreements.validate import check_agreement
from civicshare.canonical import parse_json
from civicshare.errors import InvalidInput, Problem, TooLarge

YAML, JSON = "yaml", "json"


class _Loader(yaml.SafeLoader):
    """The safe loader, leaving dates as text: the checks then read dates the same from YAML and JSON."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


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
            lines, _faults = _lines(text)
        except yaml.YAMLError:
            lines = {}  # valid JSON that YAML 1.1 cannot compose: the problems go without line numbers
        return body, lines
    if fmt != YAML:
        raise InvalidInput(f"Unknown agreement format {fmt!r}: use yaml or json.")
    try:
        lines, faults = _lines(text)
        if faults:
            raise InvalidInput("The agreement writes a field twice, or uses YAML aliases", problems=[
                Problem(message, file=filename, line=line, field=path) for path, line, message in faults])
        body = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is the safe loader with dates as text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"The agreement is not valid YAML: {problem}",
                           problems=[Problem(f"is not valid YAML: {problem}", file=filename, line=line)]) from None
    except RecursionError:
        raise InvalidInput("The agreement is nested too deeply.") from None
    return body, lines


Faults = list[tuple[str, int, str]]


def _lines(text: str) -> tuple[dict[str, int], Faults]:
    """Field path -> line, and (path, line, message) of every key written twice or alias used."""
    node = yaml.compose(text, Loader=_Loader)
    lines: dict[str, int] = {}
    faults: Faults = []
    if node is not None:
        _walk(node, "", lines, faults, set())
    return lines, faults


def _walk(node: yaml.Node, path: str, lines: dict[str, int], faults: Faults, seen_nodes: set[int]) -> None:
    # An alias (*name) makes one node appear twice; an agreement spells every value out, so that what
    # people read is what is signed (and so no small file can expand into a huge one).
    if id(node) in seen_nodes:
        faults.append((path, lines.get(path, node.start_mark.line + 1),
                       "repeats a value with a YAML alias (*name); write the value out in full"))
        return
    seen_nodes.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else json.dumps(str(key.value))
            child = f"{path}.{name}" if path else name
            if name in seen:
                faults.append((child, key.start_mark.line + 1, f"is written a second time here (first on line "
                               f"{lines[child]}); write each field once"))
                continue
            seen.add(name)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines, faults, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}[{i}]", lines, faults, seen_nodes)


def to_yaml(agreement: Agreement) -> str:
    """The agreement as YAML, fields in reading order; reads back to the same agreement and hash."""
    return str(yaml.safe_dump(agreement.to_body(), sort_keys=False, allow_unicode=True, width=100))
