"""Reading YAML that people write (agreements, mappings): the safe loader, and where each field is.

Only PyYAML's safe loader is used, with dates left as text, so a file can never make objects and
dates read the same from YAML and JSON. The same text is also composed into YAML nodes, which know
their line numbers: that is how every problem names its line. A key written twice, or a value
repeated with an alias, is reported rather than silently resolved: parsers disagree on which
duplicate wins, and what people read must be what the program reads.
"""

from __future__ import annotations

import json

import yaml


class TextDatesLoader(yaml.SafeLoader):
    """The safe loader, leaving dates as text."""


TextDatesLoader.add_constructor("tag:yaml.org,2002:timestamp",
                                lambda loader, node: loader.construct_scalar(node))

Faults = list[tuple[str, int, str]]


def line_map(text: str) -> tuple[dict[str, int], Faults]:
    """Field path -> line, and (path, line, message) of every key written twice or alias used."""
    node = yaml.compose(text, Loader=TextDatesLoader)
    lines: dict[str, int] = {}
    faults: Faults = []
    if node is not None:
        _walk(node, "", lines, faults, set())
    return lines, faults


def _walk(node: yaml.Node, path: str, lines: dict[str, int], faults: Faults, seen_nodes: set[int]) -> None:
    # An alias (*name) makes one node appear twice; these files spell every value out, so that what
    # people read is what is used (and so no small file can expand into a huge one).
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
