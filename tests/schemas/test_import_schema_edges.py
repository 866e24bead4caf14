"""The edges of importing into a schema: ``civicshare import --schema --mapping --policy``, ``civicshare
mapping suggest`` (the real command in a subprocess) and the API's import options -- on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.api.conftest import assert_error
from tests.cli.conftest import Cli
from tests.schemas.test_import_schema import POLICY_CSV, POLICY_MAPPING
from tests.schemas.test_mapping import EXPORT, MAPPING


@pytest.fixture
def cli(tmp_path: Path, db_url: str | None) -> Cli:
    runner = Cli(tmp_path / "home", tmp_path / "tmp")
    args = ["init", "--org", "north-wold", "--name", "North Wold District Council"]
    result = runner(*args, *(["--db", db_url] if db_url else []))
    assert result.code == 0, result.err
    return runner


def test_import_with_a_mapping_and_quarantine_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    source, mapping = tmp_path / "people.csv", tmp_path / "people.yaml"
    source.write_text(POLICY_CSV, "utf-8")
    mapping.write_text(POLICY_MAPPING, "utf-8")
    result = cli("import", str(source), "--dataset", "people", "--mapping", str(mapping), "--policy", "quarantine",
                 "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert (body["rows"], body["schema"]) == (2, "person@1.0.0")
    assert body["quarantine"]["rows"] == 4 and body["quarantine"]["quarantine_of"] == body["id"]
    assert body["quarantine"]["name"] == "people (quarantine)"
    assert isinstance(body["quality_score"], float)
    shown = cli("holdings", "show", body["id"])
    assert "person@1.0.0" in shown.out and "quality score" in shown.out
    text = cli("import", str(source), "--dataset", "again", "--schema", "person", "--mapping", str(mapping),
               "--policy", "quarantine")
    assert text.code == 0, text.err
    assert "Imported 2 rows into dataset 'again' (person@1.0.0)" in text.out
    assert "Quarantined 4 invalid rows into 'again (quarantine)'" in text.out


def test_reject_and_mapping_problems_exit_1_with_every_problem(cli: Cli, tmp_path: Path) -> None:
    source, mapping = tmp_path / "people.csv", tmp_path / "people.yaml"
    source.write_text(POLICY_CSV, "utf-8")
    mapping.write_text(POLICY_MAPPING, "utf-8")
    result = cli("import", str(source), "--dataset", "people", "--mapping", str(mapping), "--policy", "reject")
    assert result.code == 1
    assert "refused under the reject policy" in result.err and "rows 2, 3" in result.err
    mapping.write_text("version: 1\nschema: person\nfields:\n  shoe: {from: Shoe}\n  last_name: {from: Nme}\n",
                       "utf-8")
    result = cli("import", str(source), "--dataset", "people", "--mapping", str(mapping))
    assert result.code == 1
    assert "line 4" in result.err and "'shoe'" in result.err and "line 5" in result.err and "'Nme'" in result.err
    assert cli("holdings", "list", "--json").json() == []
    usage = cli("import", str(source), "--document", "--schema", "person")
    assert usage.code != 0 and "for datasets" in usage.err


def test_mapping_suggest_writes_a_mapping_that_imports(cli: Cli, tmp_path: Path) -> None:
    source, out = tmp_path / "clients.csv", tmp_path / "clients.yaml"
    source.write_bytes(EXPORT.encode("windows-1252"))
    printed = cli("mapping", "suggest", str(source), "--schema", "person")
    assert printed.code == 0, printed.err
    assert "# REVIEW:" in printed.out and "split_name: first" in printed.out
    written = cli("mapping", "suggest", str(source), "--schema", "person", "--out", str(out))
    assert written.code == 0, written.err
    assert out.read_text("utf-8") == printed.out
    assert yaml.safe_load(out.read_text("utf-8"))["schema"] == "person"
    again = cli("mapping", "suggest", str(source), "--schema", "person", "--out", str(out))
    assert again.code == 1 and "already exists" in again.err
    imported = cli("import", str(source), "--dataset", "clients", "--mapping", str(out), "--json")
    assert imported.code == 0, imported.err
    assert imported.json()["rows"] == 5
    unknown = cli("mapping", "suggest", str(source), "--schema", "martian")
    assert unknown.code == 1 and "martian" in unknown.err


def test_the_api_takes_schema_mapping_and_policy(node: Node) -> None:
    _user, token = node.add_user("north-wold", "records", Role.RECORDS_MANAGER)
    with TestClient(create_app(node), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {token}"}) as client:
        held = client.post("/v1/holdings/datasets", params={
            "name": "people", "filename": "people.csv", "mapping": POLICY_MAPPING, "policy": "quarantine"},
            content=POLICY_CSV.encode("utf-8"))
        assert held.status_code == 201, held.text
        body = held.json()
        assert (body["rows"], body["schema"], body["quarantine"]["rows"]) == (2, "person@1.0.0", 4)
        plain = client.post("/v1/holdings/datasets", params={"name": "plain", "filename": "p.csv"},
                            content=b"a\n1\n").json()
        assert plain["quarantine"] is None and plain["schema"] is None
        clients = client.post("/v1/holdings/datasets", params={
            "name": "clients", "filename": "clients.csv", "mapping": MAPPING}, content=EXPORT.encode("windows-1252"))
        assert clients.status_code == 201 and clients.json()["rows"] == 5
        rejected = client.post("/v1/holdings/datasets", params={
            "name": "people", "filename": "people.csv", "mapping": POLICY_MAPPING, "policy": "reject"},
            content=POLICY_CSV.encode("utf-8"))
        error = assert_error(rejected, 422, "invalid_input")
        assert "reject policy" in error["message"]
        bad = client.post("/v1/holdings/datasets", params={
            "name": "people", "filename": "people.csv", "mapping": "version: 1\nfields:\n  shoe: {from: x}\n",
            "schema": "person"}, content=POLICY_CSV.encode("utf-8"))
        assert_error(bad, 422, "invalid_input")
        usage = client.post("/v1/holdings/datasets", params={"name": "p", "filename": "p.csv", "policy": "reject"},
                            content=b"a\n1\n")
        assert_error(usage, 400, "usage")
        assert len(client.get("/v1/holdings").json()["holdings"]) == 4


def test_the_api_suggests_a_mapping_that_imports(node: Node) -> None:
    _user, token = node.add_user("north-wold", "records", Role.RECORDS_MANAGER)
    with TestClient(create_app(node), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {token}"}) as client:
        suggested = client.post("/v1/mappings/suggest", params={"schema": "person", "filename": "clients.csv"},
                                content=EXPORT.encode("windows-1252"))
        assert suggested.status_code == 200, suggested.text
        body = suggested.json()
        assert (body["version"], body["schema"]) == (1, "person")
        mapping = yaml.safe_load(body["mapping"])
        assert mapping["schema"].startswith("person") and "REVIEW" in body["mapping"]
        assert len(client.get("/v1/holdings").json()["holdings"]) == 0  # nothing is stored
        held = client.post("/v1/holdings/datasets", params={"name": "clients", "filename": "clients.csv",
                                                            "mapping": body["mapping"]},
                           content=EXPORT.encode("windows-1252"))
        assert held.status_code == 201 and held.json()["rows"] == 5, held.text
        assert_error(client.post("/v1/mappings/suggest", params={"schema": "shoe", "filename": "c.csv"},
                                 content=b"a\n1\n"), 404, "not_found")
        assert_error(client.post("/v1/mappings/suggest", params={"schema": "person", "filename": "c.csv"},
                                 content=b"a\n1\n", headers={"Authorization": "Bearer cs1.nobody.none"}),
                     401, "unauthenticated")
