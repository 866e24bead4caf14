"""``/v1/agreements`` through a real ``civicshare serve`` process, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from civicshare.access import Role
from tests.agreements.support import good_yaml
from tests.api.conftest import NORTH, Server, Tokens, assert_error


def test_create_list_show_and_csv(server: Server, tokens: Tokens) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as manager, \
            server.client(tokens[(NORTH, Role.CASEWORKER)]) as caseworker, server.client() as anonymous:
        created = manager.post("/v1/agreements", content=good_yaml(),
                               headers={"Content-Type": "application/yaml"})
        assert created.status_code == 201, created.text
        record = created.json()
        assert (record["id"], record["version"], record["state"]) == ("DSA-" + record["id"][4:8] + "-0001", 1,
                                                                      "draft")
        # The same agreement as JSON is the same agreement: refused as a duplicate.
        body = dict(record["agreement"], id=None, agreement_version=None)
        again = manager.post("/v1/agreements", content=json.dumps(body),
                             headers={"Content-Type": "application/json"})
        assert "already in the register" in assert_error(again, 409, "conflict")["message"]

        invalid = manager.post("/v1/agreements", content=good_yaml().replace("end_date: 2027-03-31",
                                                                             "end_date: 2025-01-01"))
        error = assert_error(invalid, 422, "invalid_input")
        assert [(p["field"], p["line"]) for p in error["problems"]] == [("end_date", 35), ("review_date", 36)]

        listed = caseworker.get("/v1/agreements")
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"agreements": [{k: v for k, v in record.items() if k != "agreement"}]}
        shown = caseworker.get(f"/v1/agreements/{record['id']}", params={"version": 1})
        assert shown.status_code == 200 and shown.json() == record
        assert_error(caseworker.get("/v1/agreements/DSA-1999-0001"), 404, "not_found")
        exported = caseworker.get("/v1/agreements.csv")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert exported.text.splitlines()[1].startswith(f"{record['id']},1,draft,")

        assert_error(caseworker.post("/v1/agreements", content=good_yaml()), 403, "forbidden")
        assert_error(anonymous.get("/v1/agreements"), 401, "unauthenticated")
