"""The schema catalog: shipped schemas, organisations' own schema files, and the published forms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from civicshare.errors import InvalidInput, NotFound
from civicshare.schemas import validators as v
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.model import parse_schema

PERSON_FIELDS = [
    "first_name", "middle_names", "last_name", "date_of_birth", "ni_number", "nhs_number", "address_line_1",
    "address_line_2", "address_line_3", "town", "postcode", "uprn", "phone", "email",
]


def own_schema(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "housing_tenancy",
        "version": "2.1.0",
        "title": "Housing tenancy",
        "description": "A council tenancy.",
        "fields": [
            {"name": "tenancy_ref", "type": "string", "title": "Tenancy reference", "constraints": {"required": True}},
            {"name": "uprn", "type": "string", "civicshare:validator": "uprn"},
            {"name": "start", "type": "date", "civicshare:validator": "date", "constraints": {"required": True}},
            {"name": "rent_band", "type": "string", "constraints": {"pattern": "[A-F]", "maxLength": 1}},
        ],
        "civicshare:identifiers": ["tenancy_ref"],
        "civicshare:consistency": [["tenancy_ref", "uprn"]],
    }
    body.update(changes)
    return body


def write(folder: Path, name: str, body: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body, indent=2), encoding="utf-8")
    return path


def test_shipped_schemas() -> None:
    catalog = SchemaCatalog(None)
    assert [s.key for s in catalog.list()] == ["person@1.0.0", "address@1.0.0", "service_record@1.0.0",
                                               "document@1.0.0"]
    person = catalog.get("person")
    assert person.field_names == PERSON_FIELDS
    assert person.identifiers == ("nhs_number", "ni_number")
    assert ("nhs_number", "date_of_birth") in person.consistency
    assert {f.name: f.validator for f in person.fields if f.validator} == {
        "date_of_birth": "date_of_birth", "ni_number": "ni_number", "nhs_number": "nhs_number",
        "postcode": "postcode", "uprn": "uprn", "phone": "uk_phone", "email": "email"}
    assert [f.name for f in person.fields if f.required] == ["first_name", "last_name", "date_of_birth"]
    assert catalog.get("address").field_names == ["uprn", "address_line_1", "address_line_2", "address_line_3",
                                                  "town", "postcode"]
    assert catalog.get("service_record").field_names == ["person_ref", "service", "reference", "opened", "closed",
                                                         "status"]
    assert catalog.get("document").field_names == ["title", "media_type", "created", "author", "reference",
                                                   "retention"]
    for schema in catalog.list():
        assert schema.source == "shipped" and schema.version == "1.0.0" and schema.description


def test_get_by_key_and_refusals() -> None:
    catalog = SchemaCatalog(None)
    assert catalog.get("person@1.0.0").name == "person"
    with pytest.raises(NotFound, match="this node has person@1.0.0"):
        catalog.get("person@2.0.0")
    with pytest.raises(NotFound, match="person, address, service_record, document"):
        catalog.get("resident")
    with pytest.raises(NotFound, match="its fields are first_name"):
        catalog.get("person").field("surname")


def test_missing_schemas_folder_means_only_shipped(tmp_path: Path) -> None:
    assert len(SchemaCatalog(tmp_path / "schemas").list()) == 4


def test_own_schema_is_listed_after_the_shipped_ones_and_read_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    catalog = SchemaCatalog(folder)
    with pytest.raises(NotFound):
        catalog.get("housing_tenancy")
    write(folder, "housing_tenancy.json", own_schema())
    assert catalog.names() == ["person", "address", "service_record", "document", "housing_tenancy"]
    tenancy = catalog.get("housing_tenancy@2.1.0")
    assert tenancy.source == "own"
    assert tenancy.field("start").validator == "date" and tenancy.field("start").required
    assert tenancy.field("rent_band").pattern == "[A-F]" and tenancy.field("rent_band").max_length == 1
    assert tenancy.field("uprn").title == "uprn"  # the name stands in for a missing title
    assert tenancy.consistency == (("tenancy_ref", "uprn"),)
    write(folder, "housing_tenancy.json", own_schema(version="2.2.0", primaryKey="tenancy_ref"))
    assert catalog.get("housing_tenancy").version == "2.2.0"
    assert catalog.get("housing_tenancy").primary_key == ("tenancy_ref",)


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    bad_fields = own_schema(fields=[
        {"name": "Tenancy Ref", "type": "text"},
        {"name": "uprn", "civicshare:validator": "uprn_number", "colour": "red"},
        {"name": "uprn", "constraints": {"required": "yes", "pattern": "[", "maxLength": 0, "unique": True}},
        "start",
    ], **{"civicshare:identifiers": ["tenancy_ref"], "civicshare:consistency": [["uprn"]], "owner": "me",
          "missingValues": ["", "N/A"]})
    del bad_fields["version"]
    write(folder, "housing_tenancy.json", bad_fields)
    write(folder, "broken.json", '{\n  "name": "broken",\n  "fields": [,]\n}\n')
    write(folder, "person.json", own_schema(name="person"))
    write(folder, "misnamed.json", own_schema())
    with pytest.raises(InvalidInput) as caught:
        SchemaCatalog(folder).list()
    error = caught.value
    assert "4 of the organisation's schema files" in error.message
    found = {(p.file, p.field, p.line) for p in error.problems}
    assert ("housing_tenancy.json", "owner", None) in found
    assert ("housing_tenancy.json", "version", None) in found
    assert ("housing_tenancy.json", "fields[0].name", None) in found
    assert ("housing_tenancy.json", "fields[0].type", None) in found
    assert ("housing_tenancy.json", "fields[1].civicshare:validator", None) in found
    assert ("housing_tenancy.json", "fields[1].colour", None) in found
    assert ("housing_tenancy.json", "fields[2].name", None) in found  # defined twice
    assert ("housing_tenancy.json", "fields[2].constraints.required", None) in found
    assert ("housing_tenancy.json", "fields[2].constraints.pattern", None) in found
    assert ("housing_tenancy.json", "fields[2].constraints.maxLength", None) in found
    assert ("housing_tenancy.json", "fields[2].constraints.unique", None) in found
    assert ("housing_tenancy.json", "fields[3]", None) in found
    assert ("housing_tenancy.json", "civicshare:identifiers[0]", None) in found  # tenancy_ref is not a field
    assert ("housing_tenancy.json", "civicshare:consistency[0]", None) in found
    assert ("housing_tenancy.json", "missingValues", None) in found
    assert ("broken.json", None, 3) in found
    assert ("person.json", "name", None) in found  # a shipped name
    assert ("misnamed.json", "name", None) in found
    assert len(error.problems) == 18
    messages = " | ".join(str(p) for p in error.problems)
    assert "there is no validator 'uprn_number'" in messages and "is defined twice" in messages
    with pytest.raises(InvalidInput):
        SchemaCatalog(folder).get("person")  # a broken folder is never silently half-read


def test_not_a_json_object_and_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "schemas"
    write(folder, "list.json", "[1, 2]")
    (folder / "latin.json").write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(InvalidInput) as caught:
        SchemaCatalog(folder).list()
    assert {(p.file, p.message) for p in caught.value.problems} == {
        ("list.json", "the file must hold a JSON object"), ("latin.json", "the file is not UTF-8 text")}


@pytest.mark.parametrize("name", ["person", "address", "service_record", "document"])
def test_table_schema_round_trips(name: str) -> None:
    schema = SchemaCatalog(None).get(name)
    published = schema.to_table_schema()
    assert published["name"] == name and published["version"] == "1.0.0"
    assert published["missingValues"] == [""]
    assert [f["name"] for f in published["fields"]] == schema.field_names
    assert parse_schema(json.loads(json.dumps(published)), file="x.json") == schema


def test_table_schema_publishes_what_a_pattern_can_say() -> None:
    published = {f["name"]: f for f in SchemaCatalog(None).get("person").to_table_schema()["fields"]}
    assert published["nhs_number"]["constraints"]["pattern"] == v.NHS_RE
    assert published["nhs_number"]["civicshare:validator"] == "nhs_number"
    assert published["postcode"]["constraints"]["pattern"] == v.POSTCODE_RE
    assert "pattern" not in published["date_of_birth"]["constraints"]  # a date field is checked as a date
    assert published["date_of_birth"]["type"] == "date"
    assert published["first_name"]["constraints"] == {"required": True, "maxLength": 100}


def _json_schema_accepts(schema: dict[str, Any], row: dict[str, Any]) -> bool:
    """Just enough of JSON Schema for these documents: required, additionalProperties, type, patterns."""
    if set(row) - set(schema["properties"]) or set(schema["required"]) - set(row):
        return False
    for name, value in row.items():
        prop = schema["properties"][name]
        if value is None:
            if prop["type"] == "string":
                return False
            continue
        patterns = [prop.get("pattern")] + [part["pattern"] for part in prop.get("allOf", [])]
        if any(p and not re.search(p, value) for p in patterns):
            return False
        if len(value) < prop.get("minLength", 0) or len(value) > prop.get("maxLength", 10**9):
            return False
    return True


def test_json_schema_for_one_row() -> None:
    person = SchemaCatalog(None).get("person").to_json_schema()
    assert person["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert person["type"] == "object" and person["additionalProperties"] is False
    assert person["required"] == ["first_name", "last_name", "date_of_birth"]
    assert person["properties"]["date_of_birth"]["format"] == "date"
    assert person["properties"]["email"]["format"] == "email"
    assert person["properties"]["middle_names"]["type"] == ["string", "null"]
    good = {"first_name": "Zoë", "last_name": "Ng", "date_of_birth": "1980-04-03", "nhs_number": "9434765919",
            "postcode": "SW1A 1AA", "ni_number": "AB123456C", "phone": "+447700900123", "middle_names": None}
    assert _json_schema_accepts(person, good)
    assert not _json_schema_accepts(person, {**good, "postcode": "sw1a1aa"})
    assert not _json_schema_accepts(person, {**good, "nhs_number": "943 476 5919"})
    assert not _json_schema_accepts(person, {**good, "surname": "Ng"})
    assert not _json_schema_accepts(person, {k: x for k, x in good.items() if k != "last_name"})
    assert not _json_schema_accepts(person, {**good, "first_name": ""})


def test_json_schema_keeps_a_fields_own_pattern_beside_its_validators() -> None:
    raw = own_schema()
    raw["fields"][1]["constraints"] = {"pattern": "10[0-9]*"}
    schema = parse_schema(raw, file="housing_tenancy.json")
    prop = schema.to_json_schema()["properties"]["uprn"]
    assert prop["pattern"] == "^(?:10[0-9]*)$" and prop["allOf"] == [{"pattern": "^(?:[0-9]{1,12})$"}]
