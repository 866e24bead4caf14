"""The Table Schema beside an export: FILE.schema.json from the CLI and the core, GET .../schema over HTTP."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.errors import Conflict, UsageError
from civicshare.holdings.exporting import descriptor_path, export_described
from civicshare.node import Node
from civicshare.schemas.catalog import shipped_schemas
from tests.api.conftest import assert_error, auth
from tests.cli.conftest import Cli, cli, initialised
from tests.conftest import actor, write_csv

NORTH, SOUTH = "north-wold", "south-fen"
CSV = "surname,postcode,note\nAbbott,NW1 1AA,\nBrown,NW2 2BB,=1+1\n"
__all__ = ["cli", "initialised"]  # the CLI fixtures this module uses
TEXT_FIELDS = [{"name": "surname", "type": "string"}, {"name": "postcode", "type": "string"},
               {"name": "note", "type": "string"}]


def residents(node: Node, tmp_path: Path) -> str:
    return node.import_dataset(actor(NORTH), write_csv(tmp_path / "source.csv", CSV), "Residents").id


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_every_format_gets_its_table_schema_beside_it(node: Node, tmp_path: Path, outdir: Path, fmt: str) -> None:
    holding = residents(node, tmp_path)
    out = outdir / f"residents.{fmt}"
    _holding, rows = node.export(actor(NORTH), holding, out, fmt)
    assert rows == 2 and out.exists()
    side = outdir / f"residents.{fmt}.schema.json"
    assert descriptor_path(out) == side
    descriptor = json.loads(side.read_text(encoding="utf-8"))
    # No schema: every column as text, in the dataset's order; empty cells are missing values.
    assert descriptor == {"fields": TEXT_FIELDS, "missingValues": [""]}
    assert sorted(p.name for p in outdir.iterdir()) == [out.name, side.name]  # nothing partial is left


def test_the_descriptor_describes_the_csv_as_written(node: Node, tmp_path: Path, outdir: Path) -> None:
    out = outdir / "residents.csv"
    node.export(actor(NORTH), residents(node, tmp_path), out, "csv")
    descriptor = json.loads(descriptor_path(out).read_text(encoding="utf-8"))
    with out.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == [f["name"] for f in descriptor["fields"]]


def test_an_existing_descriptor_stops_the_export_before_any_data_is_written(node: Node, tmp_path: Path,
                                                                           outdir: Path) -> None:
    holding = residents(node, tmp_path)
    out = outdir / "residents.csv"
    descriptor_path(out).write_text("mine\n")
    with pytest.raises(Conflict, match="residents.csv.schema.json already exists"):
        node.export(actor(NORTH), holding, out, "csv")
    assert not out.exists() and descriptor_path(out).read_text() == "mine\n"
    # Allowed to overwrite, both are replaced.
    node.export(actor(NORTH), holding, out, "csv", overwrite=True)
    assert json.loads(descriptor_path(out).read_text())["fields"] == TEXT_FIELDS


def test_no_data_is_left_without_its_description(node: Node, tmp_path: Path, outdir: Path) -> None:
    """If the descriptor cannot be written after the data was, the data goes too."""
    holding = residents(node, tmp_path)
    out = outdir / "residents.jsonl"
    descriptor_path(out).write_text("mine\n")
    with pytest.raises(Conflict):
        export_described(lambda: node.holdings.export(actor(NORTH), holding, out, "jsonl"), out,
                         lambda h: {"fields": []})  # no peek: the export runs first
    assert not out.exists() and descriptor_path(out).read_text() == "mine\n"


PEOPLE = ("first_name,last_name,date_of_birth,nhs_number,ni_number,postcode\n"
          "Zoë,Smith,1980-04-03,9434765919,AB123456C,NW1 4AB\n"
          "Ann,Lee,1975-01-31,,,SW1A 1AA\n")


def test_a_dataset_with_a_schema_is_described_by_it(node: Node, tmp_path: Path, outdir: Path) -> None:
    source = write_csv(tmp_path / "people.csv", PEOPLE)
    holding = node.import_dataset(actor(NORTH), source, "people", schema="person")
    assert holding.schema == "person@1.0.0" and holding.columns
    out = outdir / "people.parquet"
    node.export(actor(NORTH), holding.id, out, "parquet")
    descriptor = json.loads(descriptor_path(out).read_text(encoding="utf-8"))
    person = next(s for s in shipped_schemas() if s.name == "person").to_table_schema()
    published = {f["name"]: f for f in person["fields"]}
    # The schema's own description of each column, in the dataset's order.
    assert [f["name"] for f in descriptor["fields"]] == holding.columns
    assert descriptor["fields"] == [published[c] for c in holding.columns]
    date_of_birth = published["date_of_birth"]
    assert date_of_birth["type"] == "date" and date_of_birth["civicshare:validator"] == "date_of_birth"
    assert (descriptor["name"], descriptor["version"], descriptor["civicshare:schema"]) == (
        "person", "1.0.0", "person@1.0.0")
    assert descriptor["civicshare:identifiers"] == ["nhs_number", "ni_number"]
    assert descriptor["missingValues"] == [""]
    assert node.holding_table_schema(actor(NORTH), holding.id) == descriptor


def test_only_what_applies_to_the_columns_held_is_described() -> None:
    from civicshare.holdings.exporting import table_schema

    person = next(s for s in shipped_schemas() if s.name == "person")
    # A minimised copy: a column outside the schema is text; rules on absent columns are left out.
    descriptor = table_schema(["nhs_number", "last_name", "notes"], person)
    assert [(f["name"], f["type"]) for f in descriptor["fields"]] == [
        ("nhs_number", "string"), ("last_name", "string"), ("notes", "string")]
    assert descriptor["fields"][0]["civicshare:validator"] == "nhs_number"
    assert descriptor["fields"][2] == {"name": "notes", "type": "string"}
    assert descriptor["civicshare:identifiers"] == ["nhs_number"]
    assert descriptor["civicshare:consistency"] == []  # each pair needs date_of_birth, which is not held


def test_a_schema_the_node_no_longer_has_leaves_text_fields(node: Node, tmp_path: Path, outdir: Path) -> None:
    folder = node.layout.schemas_dir
    folder.mkdir(parents=True, exist_ok=True)
    own = {"name": "tenancy", "version": "2.1.0", "title": "Tenancy", "description": "A tenancy.",
           "fields": [{"name": "tenancy_ref", "type": "string", "constraints": {"required": True}},
                      {"name": "start", "type": "date", "civicshare:validator": "date"}]}
    (folder / "tenancy.json").write_text(json.dumps(own), encoding="utf-8")
    source = write_csv(tmp_path / "tenancies.csv", "tenancy_ref,start\nT1,2020-01-02\n")
    holding = node.import_dataset(actor(NORTH), source, "tenancies", schema="tenancy")
    assert node.holding_table_schema(actor(NORTH), holding.id)["fields"][1]["type"] == "date"
    (folder / "tenancy.json").unlink()
    out = outdir / "tenancies.csv"
    node.export(actor(NORTH), holding.id, out, "csv")
    descriptor = json.loads(descriptor_path(out).read_text(encoding="utf-8"))
    assert descriptor["fields"] == [{"name": "tenancy_ref", "type": "string"}, {"name": "start", "type": "string"}]
    assert "tenancy@2.1.0, which this node no longer has" in descriptor["description"]


def test_a_document_has_no_table_schema(node: Node, tmp_path: Path, outdir: Path) -> None:
    doc = node.import_document(actor(NORTH), io.BytesIO(b"a letter"), "letter.txt")
    out = outdir / "letter.txt"
    node.export(actor(NORTH), doc.id, out)
    assert out.read_bytes() == b"a letter" and not descriptor_path(out).exists()
    with pytest.raises(UsageError, match="is a document; only a dataset has a table schema"):
        node.holding_table_schema(actor(NORTH), doc.id)


def test_the_schema_route_and_the_link_from_an_export(node: Node, tmp_path: Path) -> None:
    holding = residents(node, tmp_path)
    doc = node.import_document(actor(NORTH), io.BytesIO(b"a letter"), "letter.txt")
    caseworker = node.add_user(NORTH, "north caseworker", Role.CASEWORKER)[1]
    manager = node.add_user(NORTH, "north manager", Role.RECORDS_MANAGER)[1]
    south = node.add_user(SOUTH, "south manager", Role.RECORDS_MANAGER)[1]
    client = TestClient(create_app(node), raise_server_exceptions=False)

    answer = client.get(f"/v1/holdings/{holding}/schema", headers=auth(caseworker))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"fields": TEXT_FIELDS, "missingValues": [""]}
    exported = client.get(f"/v1/holdings/{holding}/export?format=jsonl", headers=auth(manager))
    assert exported.status_code == 200, exported.text
    assert exported.headers["link"] == f'</v1/holdings/{holding}/schema>; rel="describedby"; type="application/json"'
    assert "link" not in client.get(f"/v1/holdings/{doc.id}/export", headers=auth(manager)).headers

    assert_error(client.get(f"/v1/holdings/{doc.id}/schema", headers=auth(manager)), 400, "usage")
    assert_error(client.get(f"/v1/holdings/{holding}/schema", headers=auth(south)), 404, "not_found")
    assert_error(client.get(f"/v1/holdings/{holding}/schema"), 401, "unauthenticated")
    # Reading a schema is a view of the holding, and logged as one.
    views = [e for e in node.audit.entries(NORTH) if e.action == "holding.view" and e.object == holding]
    assert [e.outcome for e in views] == ["ok"]


def test_the_cli_writes_the_descriptor(initialised: Cli, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "residents.csv", CSV)
    imported = initialised("import", str(source), "--dataset", "Residents", "--json")
    assert imported.code == 0, imported.err
    out = tmp_path / "export" / "residents.xlsx"
    out.parent.mkdir()
    done = initialised("export", imported.json()["id"], "--out", str(out), "--json")
    assert done.code == 0, done.err
    assert json.loads(descriptor_path(out).read_text())["fields"] == TEXT_FIELDS
    again = initialised("export", imported.json()["id"], "--out", str(out))
    assert again.code == 1 and "already exists" in again.err
