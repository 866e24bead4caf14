"""A schema: the fields a dataset's rows follow, published as Frictionless Table Schema and JSON Schema.

Schemas are read from Table Schema JSON with civicshare's additions under ``civicshare:`` keys
(``civicshare:validator`` on a field, ``civicshare:identifiers`` and ``civicshare:consistency`` on the
schema). :func:`parse_schema` reports every problem in a file at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from civicshare.errors import InvalidInput, NotFound, Problem
from civicshare.schemas import validators as v
from civicshare.schemas.validators import VALIDATORS

FIELD_TYPES = ("string", "date", "integer", "datetime")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SCHEMA_KEYS = {
    "$schema", "name", "version", "title", "description", "fields", "primaryKey", "missingValues",
    "civicshare:identifiers", "civicshare:consistency",
}
_FIELD_KEYS = {"name", "type", "title", "description", "constraints", "civicshare:validator"}
_CONSTRAINT_KEYS = {"required", "pattern", "maxLength"}

# Validators whose values have a JSON Schema "format" (information for other tools; ours is stricter).
_JSON_FORMATS = {"date": "date", "date_of_birth": "date", "email": "email"}

# The part of each validator a regular expression can say, published so that other tools check at
# least the shape (check digits, real dates and ages need civicshare or the rules in docs/schemas.md).
VALIDATOR_PATTERNS = {
    "nhs_number": v.NHS_RE,
    "ni_number": v.NI_RE,
    "postcode": v.POSTCODE_RE,
    "uprn": "[0-9]{1,12}",
    "date": v.DATE_RE,
    "date_of_birth": v.DATE_RE,
    "email": v.EMAIL_RE,
    "uk_phone": v.UK_PHONE_RE,
}


@dataclass(frozen=True)
class SchemaField:
    name: str
    type: str
    title: str
    description: str
    required: bool = False
    validator: str | None = None
    pattern: str | None = None
    max_length: int | None = None

    @property
    def published_pattern(self) -> str | None:
        """The Table Schema pattern published for the field: its own, else its validator's shape."""
        if self.pattern is not None:
            return self.pattern
        if self.type == "string" and self.validator is not None:
            return VALIDATOR_PATTERNS[self.validator]
        return None

    def to_table_schema(self) -> dict[str, Any]:
        constraints: dict[str, Any] = {"required": self.required}
        if self.published_pattern is not None:
            constraints["pattern"] = self.published_pattern
        if self.max_length is not None:
            constraints["maxLength"] = self.max_length
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "constraints": constraints,
        }
        if self.validator is not None:
            body["civicshare:validator"] = self.validator
        return body

    def to_json_schema(self) -> dict[str, Any]:
        # Values travel as text (CSV cells, stored ISO dates), so every property is a string or null.
        body: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "type": ["string", "null"] if not self.required else "string",
        }
        if self.required:
            body["minLength"] = 1
        if self.type == "date" or self.validator in ("date", "date_of_birth"):
            body["format"] = "date"
        elif self.type == "datetime":
            body["format"] = "date-time"
        elif self.validator in _JSON_FORMATS:
            body["format"] = _JSON_FORMATS[self.validator]
        shape = VALIDATOR_PATTERNS.get(self.validator or "")
        # Table Schema patterns match the whole value; JSON Schema ones anywhere, hence the anchors.
        integer = "-?[0-9]+" if self.type == "integer" else None
        patterns = [p for p in (self.pattern, shape, integer) if p is not None]
        if patterns:
            body["pattern"] = f"^(?:{patterns[0]})$"
        if len(patterns) > 1:
            body["allOf"] = [{"pattern": f"^(?:{p})$"} for p in patterns[1:]]
        if self.max_length is not None:
            body["maxLength"] = self.max_length
        if self.validator is not None:
            body["x-civicshare-validator"] = self.validator
        return body


@dataclass(frozen=True)
class Schema:
    name: str
    version: str
    title: str
    description: str
    fields: tuple[SchemaField, ...]
    identifiers: tuple[str, ...] = ()
    consistency: tuple[tuple[str, str], ...] = ()
    primary_key: tuple[str, ...] = ()
    source: str = "shipped"  # "shipped" with civicshare, or "own": from the home's schemas folder

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> SchemaField:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise NotFound(f"schema {self.name} has no field {name!r}; its fields are {', '.join(self.field_names)}")

    def to_table_schema(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "fields": [f.to_table_schema() for f in self.fields],
            "missingValues": [""],
        }
        if self.primary_key:
            body["primaryKey"] = list(self.primary_key)
        body["civicshare:identifiers"] = list(self.identifiers)
        body["civicshare:consistency"] = [list(pair) for pair in self.consistency]
        return body

    def to_json_schema(self) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) for one row as an object."""
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:civicshare:schema:{self.name}:{self.version}",
            "title": self.title,
            "description": self.description,
            "type": "object",
            "properties": {f.name: f.to_json_schema() for f in self.fields},
            "required": [f.name for f in self.fields if f.required],
            "additionalProperties": False,
        }

    def to_json(self) -> dict[str, Any]:
        """What ``schema show --json`` and the API give: the summary, the fields and the civicshare rules."""
        return {
            **self.summary(),
            "fields": [f.to_table_schema() for f in self.fields],
            "identifiers": list(self.identifiers),
            "consistency": [list(pair) for pair in self.consistency],
            "primary_key": list(self.primary_key),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "key": self.key,
            "title": self.title,
            "description": self.description,
            "fields": len(self.fields),
            "source": self.source,
        }


def _text(raw: dict[str, Any], key: str, where: str, problems: list[Problem], file: str,
          *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None:
        if required:
            problems.append(Problem(f"{key!r} is missing", file=file, field=where or key))
        return ""
    if not isinstance(value, str):
        problems.append(Problem(f"{key!r} must be text", file=file, field=f"{where}.{key}" if where else key))
        return ""
    return value


def _parse_field(raw: Any, index: int, file: str, problems: list[Problem]) -> SchemaField | None:
    where = f"fields[{index}]"
    if not isinstance(raw, dict):
        problems.append(Problem("a field must be an object", file=file, field=where))
        return None
    for key in sorted(set(raw) - _FIELD_KEYS):
        problems.append(Problem(f"unknown key {key!r}", file=file, field=f"{where}.{key}"))
    name = _text(raw, "name", where, problems, file)
    if name and not NAME_RE.match(name):
        problems.append(Problem("a field name is lower case letters, digits and _ (starting with a letter)",
                                file=file, field=f"{where}.name"))
    type_ = raw.get("type", "string")
    if type_ not in FIELD_TYPES:
        problems.append(Problem(f"type must be one of {', '.join(FIELD_TYPES)}", file=file, field=f"{where}.type"))
    title = _text(raw, "title", where, problems, file, required=False) or name
    description = _text(raw, "description", where, problems, file, required=False)
    validator = raw.get("civicshare:validator")
    if validator is not None and validator not in VALIDATORS:
        problems.append(Problem(f"there is no validator {validator!r}; the validators are {', '.join(VALIDATORS)}",
                                file=file, field=f"{where}.civicshare:validator"))
    constraints = raw.get("constraints", {})
    required, pattern, max_length = False, None, None
    if not isinstance(constraints, dict):
        problems.append(Problem("constraints must be an object", file=file, field=f"{where}.constraints"))
        constraints = {}
    for key in sorted(set(constraints) - _CONSTRAINT_KEYS):
        problems.append(Problem(f"unknown constraint {key!r}", file=file, field=f"{where}.constraints.{key}"))
    if "required" in constraints:
        required = constraints["required"]
        if not isinstance(required, bool):
            problems.append(Problem("required must be true or false", file=file,
                                    field=f"{where}.constraints.required"))
            required = False
    if "pattern" in constraints:
        pattern = constraints["pattern"]
        try:
            if not isinstance(pattern, str):
                raise TypeError
            re.compile(pattern)
        except (TypeError, re.error):
            problems.append(Problem("pattern must be a regular expression", file=file,
                                    field=f"{where}.constraints.pattern"))
            pattern = None
    if "maxLength" in constraints:
        max_length = constraints["maxLength"]
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            problems.append(Problem("maxLength must be a whole number above 0", file=file,
                                    field=f"{where}.constraints.maxLength"))
            max_length = None
    if pattern is not None and isinstance(validator, str) and pattern == VALIDATOR_PATTERNS.get(validator):
        pattern = None  # the validator's published shape, read back: the validator already checks it
    return SchemaField(name=name, type=str(type_), title=title, description=description, required=required,
                       validator=validator if isinstance(validator, str) else None, pattern=pattern,
                       max_length=max_length)


def _name_list(raw: Any, key: str, names: set[str], file: str, problems: list[Problem]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems.append(Problem("must be a list of field names", file=file, field=key))
        return ()
    for index, name in enumerate(raw):
        if name not in names:
            problems.append(Problem(f"{name!r} is not a field of this schema", file=file, field=f"{key}[{index}]"))
    return tuple(raw)


def parse_schema(raw: Any, *, file: str, source: str = "shipped") -> Schema:
    """A :class:`Schema` from Table Schema JSON (already decoded); every problem is reported at once."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise InvalidInput(f"{file} is not a schema", problems=[Problem("the file must hold a JSON object", file=file)])
    for key in sorted(set(raw) - _SCHEMA_KEYS):
        problems.append(Problem(f"unknown key {key!r}", file=file, field=key))
    name = _text(raw, "name", "", problems, file)
    if name and not NAME_RE.match(name):
        problems.append(Problem("a schema name is lower case letters, digits and _ (starting with a letter)",
                                file=file, field="name"))
    version = _text(raw, "version", "", problems, file)
    if version and not VERSION_RE.match(version):
        problems.append(Problem("version must look like 1.0.0", file=file, field="version"))
    title = _text(raw, "title", "", problems, file, required=False) or name
    description = _text(raw, "description", "", problems, file, required=False)
    raw_fields = raw.get("fields")
    fields: list[SchemaField] = []
    if not isinstance(raw_fields, list) or not raw_fields:
        problems.append(Problem("'fields' must be a list of at least one field", file=file, field="fields"))
        raw_fields = []
    seen: set[str] = set()
    for index, raw_field in enumerate(raw_fields):
        parsed = _parse_field(raw_field, index, file, problems)
        if parsed is None:
            continue
        if parsed.name and parsed.name in seen:
            problems.append(Problem(f"field {parsed.name!r} is defined twice", file=file,
                                    field=f"fields[{index}].name"))
        seen.add(parsed.name)
        fields.append(parsed)
    identifiers = _name_list(raw.get("civicshare:identifiers"), "civicshare:identifiers", seen, file, problems)
    raw_key = raw.get("primaryKey")
    primary_key = _name_list([raw_key] if isinstance(raw_key, str) else raw_key, "primaryKey", seen, file, problems)
    if raw.get("missingValues", [""]) != [""]:
        problems.append(Problem('civicshare treats only an empty cell as missing, so missingValues must be [""]; '
                                "turn other markers into empty cells with a lookup in the mapping",
                                file=file, field="missingValues"))
    consistency: list[tuple[str, str]] = []
    raw_pairs = raw.get("civicshare:consistency") or []
    if not isinstance(raw_pairs, list):
        problems.append(Problem("must be a list of [identifier, field] pairs", file=file,
                                field="civicshare:consistency"))
        raw_pairs = []
    for index, pair in enumerate(raw_pairs):
        where = f"civicshare:consistency[{index}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            problems.append(Problem("must be a pair [identifier, field]", file=file, field=where))
            continue
        for name_ in pair:
            if name_ not in seen:
                problems.append(Problem(f"{name_!r} is not a field of this schema", file=file, field=where))
        consistency.append((pair[0], pair[1]))
    if problems:
        raise InvalidInput(f"{file} is not a valid schema", problems=problems)
    return Schema(name=name, version=version, title=title, description=description, fields=tuple(fields),
                  identifiers=identifiers, consistency=tuple(consistency), primary_key=primary_key, source=source)
