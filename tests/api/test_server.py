"""Black-box: a real API server process, driven over HTTP with httpx, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from civicshare import __version__
from civicshare.access import Role
from civicshare.api.app import CONCURRENT_DOCUMENT_IMPORTS
from tests.api.conftest import NORTH, SOUTH, Server, Tokens, assert_error, auth

CANARY = "Zebedee Marchbanks"
ROWS = [["resident_id", "name", "postcode"], ["R1", CANARY, "NW1 1AA"], ["R2", "Ada Lovelace", "SF2 2BB"],
        ["R3", "Siân Ó Briain", "NW3 3CC"]]
CSV = "".join(",".join(row) + "\n" for row in ROWS)


def _import_csv(client: httpx.Client, name: str = "residents", body: str = CSV) -> dict:
    response = client.post("/v1/holdings/datasets", params={"name": name, "format": "csv",
                                                             "filename": "residents.csv"},
                           content=body.encode(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    return response.json()


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file()]


def _blob_files(server: Server) -> list[Path]:
    return _files(server.home / "blobs")


def _plaintext_hits(server: Server, needle: bytes) -> list[Path]:
    return [p for p in _files(server.home, server.tmpdir) if needle in p.read_bytes()]


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


class TestRealServer:
    def test_healthz_and_openapi(self, server: Server, db_url: str | None) -> None:
        with server.client() as c:
            health = c.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "version": __version__,
                                     "database": "postgresql" if db_url else "sqlite"}
            spec = c.get("/openapi.json").json()
        assert spec["info"] == {"title": "civicshare", "version": __version__,
                                "description": spec["info"]["description"]}
        assert {"/v1/holdings", "/v1/holdings/{holding_id}", "/v1/holdings/datasets",
                "/v1/holdings/documents", "/v1/holdings/{holding_id}/export",
                "/v1/holdings/{holding_id}/shred", "/v1/keys", "/v1/keys/rotate-kek"} <= set(spec["paths"])
        assert spec["components"]["securitySchemes"]["bearer"] == {
            "type": "http", "scheme": "bearer", "bearerFormat": "cs1.<id>.<secret>",
            "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
        for path, operations in spec["paths"].items():
            if path.startswith("/v1/"):
                assert all(op["security"] == [{"bearer": []}] for op in operations.values()), path
        upload = spec["paths"]["/v1/holdings/documents"]["post"]
        assert "application/octet-stream" in upload["requestBody"]["content"]

    def test_refusals_use_the_json_error_shape(self, server: Server, tokens: Tokens) -> None:
        with server.client() as c:
            for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YTpi"},
                            {"Authorization": "Bearer cs1.t_unknown.c2VjcmV0"}):
                response = c.get("/v1/holdings", headers=headers)
                assert_error(response, 401, "unauthenticated")
                assert response.headers["www-authenticate"] == "Bearer"
            # A token that was valid, with its secret changed.
            token_id = tokens[NORTH, Role.ADMIN].rsplit(".", 1)[0]
            assert_error(c.get("/v1/keys", headers=auth(token_id + ".wrong")), 401, "unauthenticated")

            token = auth(tokens[NORTH, Role.CASEWORKER])
            assert_error(c.get("/v1/nowhere", headers=token), 404, "not_found")
            assert_error(c.delete("/v1/holdings", headers=token), 405, "method_not_allowed")
            error = assert_error(c.post("/v1/holdings/datasets", headers=token, content=CSV), 400, "usage")
            assert error["problems"][0]["field"] == "name"
            assert_error(c.get("/v1/holdings/h_missing", headers=token), 404, "not_found")

    def test_dataset_import_list_show_export_shred(self, server: Server, tokens: Tokens) -> None:
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            held = _import_csv(c)
            assert (held["kind"], held["rows"], held["columns"], held["state"]) == (
                "dataset", 3, ROWS[0], "held")
            assert held["organisation"] == NORTH and held["source_format"] == "csv"
            assert [h["id"] for h in c.get("/v1/holdings").json()["holdings"]] == [held["id"]]
            # The import answer also names the quarantine holding (none under the default policy).
            assert held.pop("quarantine") is None
            assert c.get(f"/v1/holdings/{held['id']}").json() == held

            exported = c.get(f"/v1/holdings/{held['id']}/export", params={"format": "csv"})
            assert exported.status_code == 200, exported.text
            assert exported.headers["content-type"] == "text/csv; charset=utf-8"
            assert exported.headers["content-disposition"].startswith('attachment; filename="residents.csv"')
            assert list(csv.reader(io.StringIO(exported.text))) == ROWS

            jsonl = c.get(f"/v1/holdings/{held['id']}/export", params={"format": "jsonl"})
            assert jsonl.status_code == 200 and jsonl.headers["content-type"] == "application/jsonl"
            assert [json.loads(line) for line in jsonl.text.splitlines()] == [
                dict(zip(ROWS[0], row, strict=True)) for row in ROWS[1:]]

            parquet = c.get(f"/v1/holdings/{held['id']}/export", params={"format": "parquet"})
            assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
            assert_error(c.get(f"/v1/holdings/{held['id']}/export", params={"format": "pdf"}), 400, "usage")

        # The names are nowhere in plaintext: not in the home, not in the server's temporary folder.
        assert _plaintext_hits(server, CANARY.encode()) == []

        with server.client(tokens[NORTH, Role.RECORDS_MANAGER]) as c:
            shredded = c.post(f"/v1/holdings/{held['id']}/shred")
            assert shredded.status_code == 200, shredded.text
            assert shredded.json()["state"] == "shredded"
            error = assert_error(c.get(f"/v1/holdings/{held['id']}/export"), 410, "shredded")
            assert "shredded" in error["message"]
            assert_error(c.post(f"/v1/holdings/{held['id']}/shred"), 410, "shredded")
            assert c.get("/v1/holdings").json()["holdings"][0]["state"] == "shredded"
        assert _blob_files(server) == []

    def test_document_round_trip_streams_both_ways(self, server: Server, tokens: Tokens) -> None:
        document = os.urandom(3 * 1024 * 1024 + 17)
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            # Sent chunked (no Content-Length), so the server cannot know the size in advance.
            response = c.post("/v1/holdings/documents", params={"filename": "Résumé letter.pdf"},
                              content=_chunks(document))
            assert response.status_code == 201, response.text
            held = response.json()
            assert (held["kind"], held["name"], held["media_type"], held["size"]) == (
                "document", "Résumé letter.pdf", "application/pdf", len(document))

            titled = c.post("/v1/holdings/documents", content=b"minutes",
                            params={"filename": "m.bin", "title": "Minutes", "media_type": "text/plain"})
            assert titled.status_code == 201 and titled.json()["name"] == "Minutes"
            minutes = c.get(f"/v1/holdings/{titled.json()['id']}/export")
            assert minutes.content == b"minutes"
            assert minutes.headers["content-type"] == "text/plain"  # as stored: no charset made up
            assert minutes.headers["x-content-type-options"] == "nosniff"
            # A media type that is not one is refused at import, so it can never reach a response header.
            before = len(c.get("/v1/holdings").json()["holdings"])
            odd = c.post("/v1/holdings/documents", content=b"odd",
                         params={"filename": "odd.txt", "media_type": "text/plain\r\nX-Injected: 1"})
            assert_error(odd, 400, "usage")
            assert len(c.get("/v1/holdings").json()["holdings"]) == before

            exported = c.get(f"/v1/holdings/{held['id']}/export")
            assert exported.status_code == 200, exported.text
            assert exported.content == document
            assert exported.headers["content-type"] == "application/pdf"
            assert exported.headers["content-length"] == str(len(document))
            assert exported.headers["content-disposition"] == (
                "attachment; filename=\"R_sum_ letter.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20letter.pdf")
            assert_error(c.get(f"/v1/holdings/{held['id']}/export", params={"format": "csv"}), 400, "usage")
        assert _plaintext_hits(server, document[1000:1064]) == []

    def test_concurrent_uploads_beyond_the_worker_pool_all_arrive_intact(self, server: Server,
                                                                          tokens: Tokens) -> None:
        documents = [os.urandom(2 * 1024 * 1024 + i) for i in range(CONCURRENT_DOCUMENT_IMPORTS + 4)]

        def upload(i: int) -> str:
            with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
                response = c.post("/v1/holdings/documents", params={"filename": f"d{i}.bin"},
                                  content=_chunks(documents[i], 64 * 1024))
                assert response.status_code == 201, response.text
                return str(response.json()["id"])

        with ThreadPoolExecutor(len(documents)) as pool:
            ids = list(pool.map(upload, range(len(documents))))
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            for i, holding_id in enumerate(ids):
                assert c.get(f"/v1/holdings/{holding_id}/export").content == documents[i]

    def test_bad_csv_is_refused_with_every_problem_and_leaves_nothing(self, server: Server,
                                                                      tokens: Tokens) -> None:
        ragged = "resident_id,name,postcode\nR1,Ada Lovelace,NW1 1AA\nR2,Alan Turing\n"
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            response = c.post("/v1/holdings/datasets", content=ragged,
                              params={"name": "residents", "filename": "residents.csv"})
            error = assert_error(response, 422, "invalid_input")
            assert "residents.csv" in error["message"]
            assert any(p["line"] == 3 and p["field"] for p in error["problems"]), error["problems"]
            assert all(p["file"] == "residents.csv" for p in error["problems"])
            assert c.get("/v1/holdings").json() == {"holdings": []}
        assert _blob_files(server) == []

    def test_too_large_uploads_are_refused(self, start_server: Callable[..., Server],
                                           tokens: Tokens) -> None:
        server = start_server(max_dataset_mb=1, max_document_mb=1)
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            big_csv = CSV + "R9,Someone,NW9 9ZZ\n" * 60000  # about 1.1 MB, with a Content-Length
            response = c.post("/v1/holdings/datasets", params={"name": "big", "format": "csv"},
                              content=big_csv)
            assert "1,048,576 bytes" in assert_error(response, 413, "too_large")["message"]
            # Chunked: refused while counting, after part of the body has arrived.
            response = c.post("/v1/holdings/datasets", params={"name": "big", "format": "csv"},
                              content=_chunks(big_csv.encode(), 16 * 1024))
            assert_error(response, 413, "too_large")
            response = c.post("/v1/holdings/documents", params={"filename": "big.bin"},
                              content=_chunks(os.urandom(1024 * 1024 + 1)))
            assert_error(response, 413, "too_large")
            # Just under the limits is fine.
            ok = c.post("/v1/holdings/documents", params={"filename": "ok.bin"},
                        content=_chunks(os.urandom(1024 * 1024)))
            assert ok.status_code == 201, ok.text
            assert [h["name"] for h in c.get("/v1/holdings").json()["holdings"]] == ["ok.bin"]
        assert len(_blob_files(server)) == 1

    def test_abandoned_document_upload_stores_nothing(self, server: Server, tokens: Tokens) -> None:
        host, port = server.base_url.removeprefix("http://").split(":")
        head = (f"POST /v1/holdings/documents?filename=cut.bin HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {tokens[NORTH, Role.CASEWORKER]}\r\n"
                "Content-Length: 10000000\r\n\r\n").encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + os.urandom(2 * 1024 * 1024))
            time.sleep(0.3)  # let the server start sealing what arrived
        # The server notices the disconnect; the half-sealed document must vanish, not be stored.
        deadline = time.monotonic() + 10
        while _files(server.home / "blobs") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _files(server.home / "blobs") == []
        with server.client(tokens[NORTH, Role.CASEWORKER]) as c:
            assert c.get("/v1/holdings").json() == {"holdings": []}
            assert c.get("/healthz").status_code == 200

    def test_roles_are_enforced_and_rotation_keeps_data_readable(self, server: Server,
                                                                 tokens: Tokens) -> None:
        caseworker = server.client(tokens[NORTH, Role.CASEWORKER])
        manager = server.client(tokens[NORTH, Role.RECORDS_MANAGER])
        admin = server.client(tokens[NORTH, Role.ADMIN])
        with caseworker, manager, admin:
            first, second = _import_csv(caseworker, "first"), _import_csv(caseworker, "second")
            doc = caseworker.post("/v1/holdings/documents", params={"filename": "note.txt"},
                                  content=b"a note").json()

            error = assert_error(caseworker.post(f"/v1/holdings/{first['id']}/shred"), 403, "forbidden")
            assert "caseworker" in error["message"]
            assert_error(caseworker.post("/v1/keys/rotate-kek"), 403, "forbidden")
            assert_error(caseworker.get("/v1/keys"), 403, "forbidden")
            assert_error(manager.post("/v1/keys/rotate-kek"), 403, "forbidden")
            assert manager.post(f"/v1/holdings/{second['id']}/shred").json()["state"] == "shredded"

            before = {k["id"]: k for k in admin.get("/v1/keys").json()["keys"]}
            old_kek = next(k["id"] for k in before.values() if k["purpose"] == "kek")
            rotated = admin.post("/v1/keys/rotate-kek")
            assert rotated.status_code == 200, rotated.text
            assert rotated.json()["rewrapped"] == 2  # the live dataset and document, not the shredded one
            after = {k["id"]: k for k in manager.get("/v1/keys").json()["keys"]}
            assert after[old_kek]["state"] == "destroyed"
            assert after[rotated.json()["kek"]]["state"] == "active"
            assert after[first["key"]]["location"].endswith(rotated.json()["kek"])

            exported = caseworker.get(f"/v1/holdings/{first['id']}/export")
            assert list(csv.reader(io.StringIO(exported.text))) == ROWS
            assert caseworker.get(f"/v1/holdings/{doc['id']}/export").content == b"a note"

    def test_organisations_are_isolated(self, server: Server, tokens: Tokens) -> None:
        with server.client(tokens[NORTH, Role.CASEWORKER]) as north:
            held = _import_csv(north)
        for role in (Role.ADMIN, Role.RECORDS_MANAGER):
            with server.client(tokens[SOUTH, role]) as south:
                assert south.get("/v1/holdings").json() == {"holdings": []}
                assert_error(south.get(f"/v1/holdings/{held['id']}"), 404, "not_found")
                assert_error(south.get(f"/v1/holdings/{held['id']}/export"), 404, "not_found")
                assert_error(south.post(f"/v1/holdings/{held['id']}/shred"), 404, "not_found")
                keys = south.get("/v1/keys").json()["keys"]
                assert keys and {k["organisation"] for k in keys} == {SOUTH}
        with server.client(tokens[NORTH, Role.CASEWORKER]) as north:
            assert north.get(f"/v1/holdings/{held['id']}").json()["state"] == "held"
            exported = north.get(f"/v1/holdings/{held['id']}/export")
            assert list(csv.reader(io.StringIO(exported.text))) == ROWS
