"""The schemas a node knows: those shipped with civicshare and the organisation's own.

An organisation adds a schema by putting a Table Schema JSON file ``<name>.json`` in the home's
``schemas`` folder. The folder is read on every call, so a new or corrected file takes effect at once;
if any file is wrong, every problem in every file is reported together.
"""

from __future__ import annotations

import builtins
import importlib.resources
import json
from functools import cache
from pathlib import Path

from civicshare.errors import InvalidInput, NotFound, Problem
from civicshare.schemas.model import Schema, parse_schema

SHIPPED = ("person", "address", "service_record", "document")
MAX_SCHEMA_FILE_BYTES = 1024 * 1024


@cache
def shipped_schemas() -> tuple[Schema, ...]:
    """The canonical schemas packaged in ``civicshare/schemas/data``."""
    data = importlib.resources.files("civicshare.schemas") / "data"
    schemas = []
    for name in SHIPPED:
        raw = json.loads((data / f"{name}.json").read_text(encoding="utf-8"))
        schemas.append(parse_schema(raw, file=f"{name}.json", source="shipped"))
    return tuple(schemas)


def _read_file(path: Path, problems: list[Problem]) -> Schema | None:
    file = path.name
    try:
        if path.stat().st_size > MAX_SCHEMA_FILE_BYTES:
            problems.append(Problem("the file is larger than 1 MiB", file=file))
            return None
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem("the file is not UTF-8 text", file=file))
        return None
    except OSError as exc:
        problems.append(Problem(f"the file could not be read ({exc.strerror or type(exc).__name__})", file=file))
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(f"not valid JSON: {exc.msg}", file=file, line=exc.lineno))
        return None
    try:
        schema = parse_schema(raw, file=file, source="own")
    except InvalidInput as exc:
        problems.extend(exc.problems or [Problem(exc.message, file=file)])
        return None
    if schema.name != path.stem:
        problems.append(Problem(f"the schema is named {schema.name!r}, so the file must be {schema.name}.json",
                                file=file, field="name"))
        return None
    return schema


class SchemaCatalog:
    """Look schemas up by name (``person``) or key (``person@1.0.0``)."""

    def __init__(self, home_schemas_dir: Path | None = None) -> None:
        self.home_schemas_dir = home_schemas_dir

    def _own(self) -> list[Schema]:
        folder = self.home_schemas_dir
        if folder is None or not folder.is_dir():
            return []
        problems: list[Problem] = []
        own: list[Schema] = []
        shipped = {s.name for s in shipped_schemas()}
        for path in sorted(folder.glob("*.json")):
            schema = _read_file(path, problems)
            if schema is None:
                continue
            if schema.name in shipped:
                problems.append(Problem(f"{schema.name!r} is the name of a schema shipped with civicshare; "
                                        "choose another name", file=path.name, field="name"))
                continue
            own.append(schema)
        if problems:
            files = len({p.file for p in problems})
            raise InvalidInput(
                f"{files} of the organisation's schema files in {folder} {'is' if files == 1 else 'are'} not valid",
                problems=problems,
            )
        return own

    def list(self) -> list[Schema]:
        """Every schema: the shipped ones first, then the organisation's own by name."""
        return [*shipped_schemas(), *self._own()]

    def names(self) -> builtins.list[str]:
        return [s.name for s in self.list()]

    def get(self, name: str) -> Schema:
        """The schema called ``name``; ``name@version`` also checks the version."""
        wanted, _, version = name.partition("@")
        schemas = self.list()
        for schema in schemas:
            if schema.name == wanted:
                if version and version != schema.version:
                    raise NotFound(f"schema {name} is not known here; this node has {schema.key}")
                return schema
        raise NotFound(f"there is no schema {wanted!r}; the schemas are {', '.join(s.name for s in schemas)}")
