"""GET /v1/schemas and /v1/schemas/{name}, with the app as the HTTP transport, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.api.conftest import assert_error
from tests.schemas.test_catalog import own_schema, write


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    _user, token = node.add_user("south-fen", "caseworker", Role.CASEWORKER)
    with TestClient(create_app(node), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_schemas_need_a_signed_in_user(node: Node) -> None:
    with TestClient(create_app(node), raise_server_exceptions=False) as anonymous:
        assert_error(anonymous.get("/v1/schemas"), 401, "unauthenticated")
        assert_error(anonymous.get("/v1/schemas/person"), 401, "unauthenticated")


def test_list_and_one_schema_in_each_format(node: Node, client: TestClient) -> None:
    listed = client.get("/v1/schemas")
    assert listed.status_code == 200, listed.text
    assert [s["key"] for s in listed.json()] == ["person@1.0.0", "address@1.0.0", "service_record@1.0.0",
                                                 "document@1.0.0"]
    person = node.schemas.get("person")
    table_schema = client.get("/v1/schemas/person")
    assert table_schema.status_code == 200 and table_schema.json() == person.to_table_schema()
    assert client.get("/v1/schemas/person", params={"format": "table-schema"}).json() == person.to_table_schema()
    assert client.get("/v1/schemas/person@1.0.0", params={"format": "json-schema"}).json() == \
        person.to_json_schema()
    assert client.get("/v1/schemas/person", params={"format": "civicshare"}).json() == person.to_json()


def test_refusals(client: TestClient) -> None:
    error = assert_error(client.get("/v1/schemas/resident"), 404, "not_found")
    assert "person, address, service_record, document" in error["message"]
    assert_error(client.get("/v1/schemas/person@9.0.0"), 404, "not_found")
    error = assert_error(client.get("/v1/schemas/person", params={"format": "yaml"}), 400, "usage")
    assert "table-schema" in error["message"]


def test_the_homes_own_schemas_and_their_problems(node: Node, client: TestClient) -> None:
    write(node.layout.schemas_dir, "housing_tenancy.json", own_schema())
    assert client.get("/v1/schemas").json()[-1]["key"] == "housing_tenancy@2.1.0"
    assert client.get("/v1/schemas/housing_tenancy").json()["fields"][0]["name"] == "tenancy_ref"
    empty = own_schema(fields=[], **{"civicshare:identifiers": [], "civicshare:consistency": []})
    write(node.layout.schemas_dir, "housing_tenancy.json", empty)
    error = assert_error(client.get("/v1/schemas"), 422, "invalid_input")
    assert error["problems"] == [{"file": "housing_tenancy.json", "line": None, "field": "fields",
                                  "message": "'fields' must be a list of at least one field"}]
