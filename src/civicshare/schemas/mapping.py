"""Mappings: how a council export's columns become a schema's fields.

A mapping is a small YAML file::

    version: 1
    schema: person
    fields:
      first_name: {from: Name, transforms: [{split_name: first}, title]}
      date_of_birth: {from: DOB, transforms: [{date: [dd/mm/yyyy, excel]}]}
      postcode: {from: Post Code, transforms: [postcode]}
      town: {constant: North Wold}

It is read once (:func:`parse_mapping`) and compiled against the source's columns into the select
list of ONE DuckDB SELECT (:func:`compile_select`). Every problem -- in the YAML, with the schema, with
the source's columns -- is reported at once, each with the mapping file's line and the field path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import yaml

from civicshare.errors import InvalidInput, Problem, TooLarge, UsageError
from civicshare.holdings.duck import sql_ident
from civicshare.holdings.problems import Problems
from civicshare.schemas.transforms import BadStep, Context, Step, join_sql, parse_step, step_sql
from civicshare.yamltext import TextDatesLoader, line_map

if TYPE_CHECKING:
    from civicshare.schemas.model import Schema

MAPPING_VERSION = 1
MAX_MAPPING_BYTES = 1_000_000
_FIELD_KEYS = ("from", "transforms", "constant")
_TOP_KEYS = ("version", "schema", "fields")


@dataclass(frozen=True)
class FieldMapping:
    """Where one schema field comes from: source columns and transforms, or a constant."""

    target: str
    sources: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    constant: str | None = None
    separator: str = " "


@dataclass
class Mapping:
    """A parsed mapping. ``problems`` found while reading are raised by :func:`compile_select`, with
    those only the source's columns reveal, so the person sees every problem at once."""

    file: str
    schema: str | None
    fields: dict[str, FieldMapping]
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field path, message)

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def line(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rsplit(".", 1)[0] if "." in path else path.split("[", 1)[0] if "[" in path else ""
        return None


def _decode(text: str | bytes, filename: str) -> str:
    if len(text) > MAX_MAPPING_BYTES:
        raise TooLarge(f"The mapping {filename} is larger than {MAX_MAPPING_BYTES:,} bytes; a mapping is a short "
                       "text file.")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"The mapping {filename} is not UTF-8 text.",
                               problems=[Problem("is not UTF-8 text", file=filename)]) from None
    return text.removeprefix("\ufeff")


def _load(text: str, filename: str) -> tuple[Any, dict[str, int]]:
    try:
        lines, faults = line_map(text)
        if faults:
            raise InvalidInput(f"The mapping {filename} writes a field twice, or uses YAML aliases", problems=[
                Problem(message, file=filename, line=line, field=path) for path, line, message in faults])
        body = yaml.load(text, Loader=TextDatesLoader)  # noqa: S506 - the safe loader, dates as text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "it could not be read"
        raise InvalidInput(f"The mapping {filename} is not valid YAML: {problem}",
                           problems=[Problem(f"is not valid YAML: {problem}", file=filename, line=line)]) from None
    except RecursionError:
        raise InvalidInput(f"The mapping {filename} is nested too deeply.") from None
    return body, lines


def parse_mapping(text: str | bytes, *, filename: str = "the mapping") -> Mapping:
    """Read a mapping. Raises InvalidInput only when the text is not YAML at all; every other problem
    is kept on the mapping and raised, with the rest, by :func:`compile_select`."""
    body, lines = _load(_decode(text, filename), filename)
    mapping = Mapping(file=filename, schema=None, fields={}, lines=lines)
    if not isinstance(body, dict):
        mapping.problem("", "a mapping is a YAML map with version, schema and fields")
        return mapping
    for key in body:
        if key not in _TOP_KEYS:
            mapping.problem(str(key), f"is not part of a mapping; write only {', '.join(_TOP_KEYS)}")
    if body.get("version") != MAPPING_VERSION:
        mapping.problem("version", f"must be {MAPPING_VERSION} (the mapping format this civicshare reads)")
    schema = body.get("schema")
    if schema is not None and not isinstance(schema, str):
        mapping.problem("schema", "must be a schema name, such as person")
    mapping.schema = schema if isinstance(schema, str) else None
    fields = body.get("fields")
    if not isinstance(fields, dict) or not fields:
        mapping.problem("fields", "must map each schema field to where it comes from, e.g. 'first_name: "
                        "{from: Forename}'")
        return mapping
    for target, spec in fields.items():
        parsed = _field(mapping, str(target), spec)
        if parsed is not None:
            mapping.fields[str(target)] = parsed
    return mapping


def _field(mapping: Mapping, target: str, spec: Any) -> FieldMapping | None:
    path = f"fields.{target}"
    if isinstance(spec, str):
        spec = {"from": spec}  # the short form: just the source column
    if not isinstance(spec, dict):
        mapping.problem(path, "must say where the field comes from: a column name, or {from: ..., transforms: "
                        "[...]}, or {constant: ...}")
        return None
    for key in spec:
        if key not in _FIELD_KEYS:
            mapping.problem(f"{path}.{key}", f"is not a field option; use {', '.join(_FIELD_KEYS)}")
    if ("from" in spec) == ("constant" in spec):
        mapping.problem(path, "needs either from (source columns) or constant (one value for every row)")
        return None
    if "constant" in spec:
        value = spec["constant"]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            mapping.problem(f"{path}.constant", "must be a single value (text or a number)")
            return None
        if "transforms" in spec:
            mapping.problem(f"{path}.transforms", "a constant takes no transforms; write the value as it should be")
        return FieldMapping(target, constant=str(value))
    sources = spec["from"]
    sources = [sources] if isinstance(sources, str) else sources
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        mapping.problem(f"{path}.from", "must name a source column, or list several to join")
        return None
    raw_steps = spec.get("transforms") or []
    if not isinstance(raw_steps, list):
        mapping.problem(f"{path}.transforms", "must be a list, e.g. [trim, {date: dd/mm/yyyy}]")
        return None
    steps: list[Step] = []
    separator = " "
    for i, item in enumerate(raw_steps):
        try:
            step = parse_step(item)
        except BadStep as exc:
            mapping.problem(f"{path}.transforms[{i}]", str(exc))
            continue
        if step.name == "join":
            if len(sources) < 2:
                mapping.problem(f"{path}.transforms[{i}]", "join needs several columns in from")
            elif i != 0:
                mapping.problem(f"{path}.transforms[{i}]", "join comes first: the columns are joined, then "
                                "the other transforms apply")
            separator = step.option
            continue
        steps.append(step)
    # Kept even with a bad transform: its source columns are still checked, so every problem shows at once.
    return FieldMapping(target, sources=tuple(sources), steps=tuple(steps), separator=separator)


# Compiling -------------------------------------------------------------------------------------


def schema_name(option: str | None, mapping: Mapping | None) -> str:
    """The schema to import into: the one given, else the mapping's. UsageError if neither names one."""
    name = option or (mapping.schema if mapping is not None else None)
    if not name:
        raise UsageError("Say which schema the data follows: give --schema, or write 'schema:' in the mapping.")
    return name.split("@", 1)[0]


def _check_schema(mapping: Mapping, schema: Schema) -> None:
    if mapping.schema is None:
        return
    name, _, version = mapping.schema.partition("@")
    if name != schema.name:
        mapping.problem("schema", f"names {name!r} but the import is into {schema.name!r}")
    elif version and version != schema.version:
        mapping.problem("schema", f"was written for {schema.name} version {version}; this node has version "
                        f"{schema.version}")


def compile_select(mapping: Mapping | None, schema: Schema, columns: list[str], ctx: Context, *,
                   source_label: str = "the file") -> str:
    """The select list (``expr AS "field", ...``, in the schema's field order) turning a table with
    ``columns`` (all text) into the schema's fields. Unmapped fields are NULL.

    Without a mapping the columns must already be the schema's field names. Raises InvalidInput
    listing every problem at once.
    """
    if mapping is None:
        return _identity(schema, columns, source_label)
    mapping = replace(mapping, problems=list(mapping.problems))  # compiling twice reports each problem once
    _check_schema(mapping, schema)
    known = {f.name for f in schema.fields}
    present = set(columns)
    exprs: dict[str, str] = {}
    for target, spec in mapping.fields.items():
        path = f"fields.{target}"
        if target not in known:
            mapping.problem(path, f"{schema.name} has no field {target!r}; its fields are "
                            + ", ".join(f.name for f in schema.fields))
            continue
        missing = [s for s in spec.sources if s not in present]
        for source in missing:
            mapping.problem(f"{path}.from", f"{source_label} has no column {source!r}; its columns are "
                            + ", ".join(repr(c) for c in columns))
        if missing:
            continue
        exprs[target] = _field_sql(spec, ctx)
    mapped = set(mapping.fields)
    for f in schema.fields:
        if f.required and f.name not in mapped:
            mapping.problem("fields", f"{schema.name} requires {f.name!r}, which the mapping does not fill")
    _raise(mapping)
    return ", ".join(f"{exprs.get(f.name, 'CAST(NULL AS VARCHAR)')} AS {sql_ident(f.name)}" for f in schema.fields)


def _field_sql(spec: FieldMapping, ctx: Context) -> str:
    if spec.constant is not None:
        return "'" + spec.constant.replace("'", "''") + "'"
    if len(spec.sources) == 1:
        expr = sql_ident(spec.sources[0])
    else:
        expr = join_sql([sql_ident(s) for s in spec.sources], spec.separator)
    for step in spec.steps:
        expr = step_sql(step, expr, ctx)
    return expr


def _raise(mapping: Mapping) -> None:
    if not mapping.problems:
        return
    problems = Problems(mapping.file)
    for path, message in mapping.problems:
        problems.add(message, line=mapping.line(path), field=path or None)
    raise problems.error("cannot be used")


def _identity(schema: Schema, columns: list[str], label: str) -> str:
    known = [f.name for f in schema.fields]
    problems = Problems(label)
    unknown = [c for c in columns if c not in known]
    if unknown:
        problems.add(f"{schema.name} has no field " + ", ".join(repr(c) for c in unknown)
                     + "; without a mapping the columns must be the schema's field names ("
                     + ", ".join(known) + "); write a mapping (civicshare mapping suggest) to rename them")
    for f in schema.fields:
        if f.required and f.name not in columns:
            problems.add(f"{schema.name} requires the column {f.name!r}", field=f.name)
    problems.raise_if_any()
    return ", ".join((sql_ident(n) if n in columns else "CAST(NULL AS VARCHAR)") + f" AS {sql_ident(n)}"
                     for n in known)
