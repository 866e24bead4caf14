"""In-process checks, where a real server process would add nothing: an error inside a route, XLSX export."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from civicshare.access import Role
from civicshare.api.app import create_app
from civicshare.node import Node
from tests.api.conftest import assert_error


def test_an_unexpected_error_is_a_500_in_the_json_shape_and_logged_without_secrets(
        node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(node)

    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("connection string postgresql://secret@db")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode?name=Zebedee", headers={"Authorization": "Bearer cs1.t_x.tok3n"})
    error = assert_error(response, 500, "internal")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert "server log" in error["message"]
    logged = capsys.readouterr()
    logged_text = logged.out + logged.err
    assert "unexpected error" in logged_text and "RuntimeError" in logged_text
    assert "tok3n" not in logged_text and "Zebedee" not in logged_text


def test_xlsx_export_streams_a_workbook(node: Node) -> None:
    _user, token = node.add_user("north-wold", "caseworker", Role.CASEWORKER)
    with TestClient(create_app(node), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {token}"}) as client:
        held = client.post("/v1/holdings/datasets", params={"name": "residents", "filename": "r.csv"},
                           content=b"resident_id,name\nR1,Ada Lovelace\n").json()
        exported = client.get(f"/v1/holdings/{held['id']}/export", params={"format": "xlsx"})
    assert exported.status_code == 200, exported.text
    assert exported.content[:2] == b"PK"
    assert exported.headers["content-disposition"].startswith('attachment; filename="residents.xlsx"')
