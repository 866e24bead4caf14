"""``/v1/agreements`` through a real ``civicshare serve`` process, on SQLite and PostgreSQL: the register, and
proposing, signing and revoking between two organisations the node hosts."""

from __future__ import annotations

import json
import time

import httpx

from civicshare.access import Role
from tests.agreements.support import good_yaml
from tests.api.conftest import NORTH, SOUTH, Server, Tokens, assert_error


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


def _wait_state(client: httpx.Client, agreement_id: str, state: str, timeout: float = 30, *,
                waiting_for: list[str] | None = None) -> dict:
    """The agreement as ``client`` sees it once it is in ``state`` (the notices thread delivers in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/v1/agreements/{agreement_id}")
        if answer.status_code == 200 and answer.json()["state"] == state and (
                waiting_for is None or answer.json()["waiting_for"] == waiting_for):
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_propose_sign_revoke(server: Server, tokens: Tokens) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as manager, \
            server.client(tokens[(NORTH, Role.DPO)]) as north_dpo, \
            server.client(tokens[(SOUTH, Role.DPO)]) as south_dpo, \
            server.client(tokens[(SOUTH, Role.ADMIN)]) as south_admin, \
            server.client(tokens[(SOUTH, Role.CASEWORKER)]) as south_caseworker:
        created = manager.post("/v1/agreements", content=good_yaml(), headers={"Content-Type": "application/yaml"})
        assert created.status_code == 201, created.text
        agreement_id = created.json()["id"]
        assert_error(manager.post(f"/v1/agreements/{agreement_id}/sign"), 403, "forbidden")
        assert_error(manager.post("/v1/agreements/DSA-1999-0001/propose"), 404, "not_found")
        assert_error(south_caseworker.post(f"/v1/agreements/{agreement_id}/propose"), 403, "forbidden")

        proposed = manager.post(f"/v1/agreements/{agreement_id}/propose", params={"version": 1})
        assert proposed.status_code == 200, proposed.text
        assert proposed.json()["state"] == "proposed" and proposed.json()["proposed_by"] == NORTH
        theirs = _wait_state(south_caseworker, agreement_id, "proposed")
        assert theirs["hash"] == created.json()["hash"] and theirs["waiting_for"] == [NORTH, SOUTH]

        refused = assert_error(south_admin.post(f"/v1/agreements/{agreement_id}/sign"), 403, "forbidden")
        assert refused["message"] == (f"{SOUTH} admin is an administrator and may not sign data sharing agreements: "
                                      f"only a data protection officer (a user with the dpo role) signs for {SOUTH}.")
        signed = south_dpo.post(f"/v1/agreements/{agreement_id}/sign")
        assert signed.status_code == 200, signed.text
        assert signed.json()["waiting_for"] == [NORTH]
        assert signed.json()["signatures"][0]["signed_by"] == f"{SOUTH} dpo"
        _wait_state(manager, agreement_id, "proposed", waiting_for=[NORTH])
        active = north_dpo.post(f"/v1/agreements/{agreement_id}/sign")
        assert active.status_code == 200 and active.json()["state"] == "active" and active.json()["stop"] is None
        _wait_state(south_caseworker, agreement_id, "active")

        assert_error(manager.post(f"/v1/agreements/{agreement_id}/revoke"), 400, "usage")
        assert_error(south_caseworker.post(f"/v1/agreements/{agreement_id}/revoke", json={"reason": "no"}), 403,
                     "forbidden")
        revoked = manager.post(f"/v1/agreements/{agreement_id}/revoke", json={"reason": "The project closed."})
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revocation"]["reason"] == "The project closed."
        seen = _wait_state(south_caseworker, agreement_id, "revoked")
        assert seen["revocation"]["by"] == NORTH
        assert seen["stop"].startswith(f"agreement {agreement_id} was revoked by {NORTH} on ")
        assert_error(manager.post(f"/v1/agreements/{agreement_id}/revoke", json={"reason": "again"}), 409, "conflict")
