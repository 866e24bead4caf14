"""``civicshare schema list|show|export`` run as a user would, in a subprocess.

The schema commands read no database, so one home folder is enough (no storage backend is involved).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from civicshare.schemas.catalog import SchemaCatalog
from tests.cli.conftest import Cli
from tests.schemas.test_catalog import own_schema, write


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path / "tmp")


def test_list_without_a_home_shows_the_shipped_schemas(cli: Cli, tmp_path: Path) -> None:
    env = {k: x for k, x in cli.env.items() if k != "CIVICSHARE_HOME"}
    result = subprocess.run([sys.executable, "-m", "civicshare", "schema", "list", "--json"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [s["key"] for s in json.loads(result.stdout)] == ["person@1.0.0", "address@1.0.0",
                                                             "service_record@1.0.0", "document@1.0.0"]
    table = cli("schema", "list")
    assert table.code == 0 and "service_record" in table.out and "shipped" in table.out


def test_list_and_show_include_the_homes_own_schemas(cli: Cli) -> None:
    write(cli.home / "schemas", "housing_tenancy.json", own_schema())
    listed = cli("schema", "list", "--json")
    assert listed.code == 0, listed.err
    own = listed.json()[-1]
    assert own == {"name": "housing_tenancy", "version": "2.1.0", "key": "housing_tenancy@2.1.0",
                   "title": "Housing tenancy", "description": "A council tenancy.", "fields": 4, "source": "own"}
    shown = cli("schema", "show", "housing_tenancy", "--json")
    assert shown.code == 0, shown.err
    body = shown.json()
    assert [f["name"] for f in body["fields"]] == ["tenancy_ref", "uprn", "start", "rent_band"]
    assert body["identifiers"] == ["tenancy_ref"] and body["consistency"] == [["tenancy_ref", "uprn"]]


def test_show_in_words(cli: Cli) -> None:
    result = cli("schema", "show", "person")
    assert result.code == 0, result.err
    assert "person@1.0.0" in result.out and "nhs_number" in result.out
    assert "Identifiers (should be unique): nhs_number, ni_number" in result.out
    assert "one nhs_number should have one date_of_birth" in result.out


def test_export_prints_or_writes_a_new_file(cli: Cli, tmp_path: Path) -> None:
    person = SchemaCatalog(None).get("person")
    printed = cli("schema", "export", "person")
    assert printed.code == 0, printed.err
    assert printed.json() == person.to_table_schema()
    target = tmp_path / "person.schema.json"
    written = cli("schema", "export", "person", "--format", "json-schema", "--out", str(target))
    assert written.code == 0, written.err
    assert json.loads(target.read_text(encoding="utf-8")) == person.to_json_schema()
    again = cli("schema", "export", "person", "--out", str(target))
    assert again.code == 1 and "already exists" in again.err
    assert json.loads(target.read_text(encoding="utf-8")) == person.to_json_schema()  # untouched


def test_refusals(cli: Cli) -> None:
    unknown = cli("schema", "show", "resident")
    assert unknown.code == 1 and "there is no schema 'resident'" in unknown.err and "person" in unknown.err
    assert "Traceback" not in unknown.err
    bad_format = cli("schema", "export", "person", "--format", "yaml")
    assert bad_format.code == 2 and "table-schema, json-schema" in bad_format.err
    write(cli.home / "schemas", "housing_tenancy.json", own_schema(version="two"))
    broken = cli("schema", "list")
    assert broken.code == 1
    assert "housing_tenancy.json, field 'version': version must look like 1.0.0" in broken.err
