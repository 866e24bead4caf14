"""The ``/v1/audit`` endpoints through a real ``civicshare serve`` process, on SQLite and on PostgreSQL.

Checkpoints and proofs are checked as a partner would, with the pure RFC 9162 and C2SP functions against
the signed checkpoints; tampering is done behind the server's back, straight in its database.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from civicshare.access import Role
from civicshare.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from civicshare.audit.note import open_note, parse_verifier_key
from civicshare.errors import IntegrityError
from tests.api.conftest import NORTH, SOUTH, Server, Tokens, assert_error
from tests.cli.test_audit_cli import b64decode_all, note_checkpoint, tamper_entry

CSV = b"resident_id,name,postcode\nR1,Ada Lovelace,NW1 1AA\nR2,Grace Hopper,NW2 2BB\nR3,Alan Turing,NW3 3CC\n"
FIELDS = ("time", "actor", "action", "object", "outcome", "details")


def user_name(org: str, role: Role) -> str:
    """The name the ``tokens`` fixture gives each user, which is the actor their requests are logged under."""
    return f"{org} {role.value}"


def import_csv(client: httpx.Client, name: str = "residents") -> str:
    response = client.post("/v1/holdings/datasets", params={"name": name, "format": "csv"}, content=CSV,
                           headers={"Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def entries(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/entries", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["entries"])


def sign(client: httpx.Client) -> dict[str, Any]:
    response = client.post("/v1/audit/checkpoints")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_entries_list_the_api_users_own_actions_and_filter(server: Server, tokens: Tokens) -> None:
    manager, caseworker = user_name(NORTH, Role.RECORDS_MANAGER), user_name(NORTH, Role.CASEWORKER)
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as c, \
            server.client(tokens[(NORTH, Role.CASEWORKER)]) as w:
        hid = import_csv(c)
        assert w.get(f"/v1/holdings/{hid}").status_code == 200
        everything = entries(c)
        assert [e["index"] for e in everything] == list(range(len(everything)))
        assert {e["organisation"] for e in everything} == {NORTH}

        about = entries(c, object=hid)
        assert [(e["action"], e["actor"], e["outcome"]) for e in about] == [
            ("holding.import", manager, "ok"), ("holding.view", caseworker, "ok")]
        assert about == [e for e in everything if e["object"] == hid]
        assert about[0]["details"]["rows"] == 3 and about[0]["details"]["format"] == "csv"

        by_caseworker = entries(c, actor=caseworker)
        assert [e["action"] for e in by_caseworker] == ["holding.view"]
        by_manager = entries(c, actor=manager)
        assert by_manager == [e for e in everything if e["actor"] == manager]
        assert {"holding.import", "key.create"} <= {e["action"] for e in by_manager}

        assert entries(c, since="2999-01-01T00:00:00Z") == []
        assert entries(c, since="2000-01-01T00:00:00Z") == everything
        view = about[1]
        since_view = entries(c, since=view["time"])
        assert since_view == [e for e in everything if e["time"] >= view["time"]]
        assert 0 < len(since_view) < len(everything)
        assert entries(c, limit=3) == everything[:3]
        assert entries(c, object=hid, actor=caseworker) == [view]

    for role in (Role.ADMIN, Role.DPO):  # the other roles that may read the log see the same one
        with server.client(tokens[(NORTH, role)]) as other:
            assert entries(other) == everything


def test_a_caseworker_is_refused_every_audit_endpoint(server: Server, tokens: Tokens) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/audit/entries", {}),
        ("GET", "/v1/audit/checkpoints", {}),
        ("POST", "/v1/audit/checkpoints", {}),
        ("GET", "/v1/audit/proofs/inclusion", {"params": {"index": 0}}),
        ("GET", "/v1/audit/proofs/consistency", {"params": {"from": 1}}),
        ("POST", "/v1/audit/verify", {"json": {}}),
    ]
    with server.client() as anonymous:
        spec = anonymous.get("/openapi.json").json()
        served = {(method.upper(), path) for path, ops in spec["paths"].items() if path.startswith("/v1/audit")
                  for method in ops}
        assert served == {(method, path) for method, path, _ in calls}  # every audit endpoint is tried here
        for method, path, kwargs in calls:
            assert_error(anonymous.request(method, path, **kwargs), 401, "unauthenticated")
    for org in (NORTH, SOUTH):
        with server.client(tokens[(org, Role.CASEWORKER)]) as w:
            for method, path, kwargs in calls:
                error = assert_error(w.request(method, path, **kwargs), 403, "forbidden")
                assert "caseworker" in error["message"]


def test_checkpoints_and_proofs_verify_as_a_partner_would(server: Server, tokens: Tokens) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as c:
        signed_small = sign(c)
        small = note_checkpoint(signed_small, NORTH)
        assert small.size == len(entries(c)) > 0
        import_csv(c)
        signed_big = sign(c)
        big = note_checkpoint(signed_big, NORTH)
        assert big.size > small.size and big.root_hash != small.root_hash
        assert sign(c) == signed_big  # nothing added since: the same checkpoint
        everything = entries(c)
        assert len(everything) == big.size

        listed = c.get("/v1/audit/checkpoints").json()
        assert listed["verifier_key"] == signed_big["verifier_key"] == signed_small["verifier_key"]
        assert [cp["note"] for cp in listed["checkpoints"]] == [signed_small["note"], signed_big["note"]]

        for index, checkpoint, note in ((0, small, signed_small), (small.size - 1, small, signed_small),
                                        (small.size, big, signed_big), (big.size - 1, big, signed_big)):
            response = c.get("/v1/audit/proofs/inclusion", params={"index": index, "size": checkpoint.size})
            assert response.status_code == 200, response.text
            proof = response.json()
            assert (proof["index"], proof["tree_size"], proof["checkpoint"]) == (index, checkpoint.size, note["note"])
            record = json.loads(proof["entry"])
            assert {k: record[k] for k in FIELDS} == {k: everything[index][k] for k in FIELDS}
            leaf, hashes = leaf_hash(proof["entry"].encode("utf-8")), b64decode_all(proof["hashes"])
            verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root_hash)
            with pytest.raises(IntegrityError):
                verify_inclusion(leaf_hash(b"another entry"), index, checkpoint.size, hashes, checkpoint.root_hash)
        whole = c.get("/v1/audit/proofs/inclusion", params={"index": 1})
        assert whole.status_code == 200 and whole.json()["tree_size"] == big.size

        response = c.get("/v1/audit/proofs/consistency", params={"from": small.size, "to": big.size})
        assert response.status_code == 200, response.text
        proof = response.json()
        assert (proof["from_checkpoint"], proof["to_checkpoint"]) == (signed_small["note"], signed_big["note"])
        hashes = b64decode_all(proof["hashes"])
        verify_consistency(small.size, big.size, hashes, small.root_hash, big.root_hash)
        with pytest.raises(IntegrityError):
            verify_consistency(small.size, big.size, hashes, big.root_hash, small.root_hash)
        assert c.get("/v1/audit/proofs/consistency", params={"from": small.size}).json() == proof


def test_verify_answers_500_audit_tampered_naming_the_index(server: Server, tokens: Tokens,
                                                            db_url: str | None) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as north, \
            server.client(tokens[(SOUTH, Role.RECORDS_MANAGER)]) as south:
        import_csv(north)
        saved = sign(north)
        response = north.post("/v1/audit/verify")
        assert response.status_code == 200, response.text
        assert response.json() == {"organisation": NORTH, "verified": True, "tree_size": len(entries(north)),
                                   "root_hash": saved["root_hash"], "checkpoints_checked": [saved["tree_size"]]}
        with_saved = north.post("/v1/audit/verify", json={"checkpoints": [saved["note"]]})
        assert with_saved.status_code == 200 and with_saved.json()["verified"] is True

        tamper_entry(server.home, db_url, NORTH, 5)
        error = assert_error(north.post("/v1/audit/verify"), 500, "audit_tampered")
        assert error["index"] == 5 and "index 5" in error["message"]
        # Each organisation's log stands alone: south-fen's still verifies.
        response = south.post("/v1/audit/verify")
        assert response.status_code == 200 and response.json()["organisation"] == SOUTH


def test_an_organisation_sees_and_verifies_only_its_own_log(server: Server, tokens: Tokens) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as north, \
            server.client(tokens[(SOUTH, Role.RECORDS_MANAGER)]) as south:
        north_hid = import_csv(north)
        south_hid = import_csv(south)
        north_log, south_log = entries(north), entries(south)
        assert {e["organisation"] for e in south_log} == {SOUTH}
        assert {e["organisation"] for e in north_log} == {NORTH}
        assert not ({e["object"] for e in north_log} & {e["object"] for e in south_log}) - {None}
        assert not {e["actor"] for e in south_log} & {user_name(NORTH, role) for role in Role}
        assert entries(south, object=north_hid) == [] and entries(north, object=south_hid) == []
        assert entries(south, actor=user_name(NORTH, Role.RECORDS_MANAGER)) == []

        verified = south.post("/v1/audit/verify")
        assert verified.status_code == 200, verified.text
        assert (verified.json()["organisation"], verified.json()["tree_size"]) == (SOUTH, len(south_log))
        south_signed, north_signed = sign(south), sign(north)
        note_checkpoint(south_signed, SOUTH)
        # North's pinned key does not vouch for south's log, nor the other way round.
        with pytest.raises(IntegrityError):
            open_note(south_signed["note"], *parse_verifier_key(north_signed["verifier_key"]))
        # A checkpoint of north's log is refused when offered as one of south's.
        assert_error(south.post("/v1/audit/verify", json={"checkpoints": [north_signed["note"]]}), 422,
                     "invalid_input")


def test_a_wrong_token_secret_is_logged_in_the_tokens_organisation(server: Server, tokens: Tokens) -> None:
    _prefix, token_id, secret = tokens[(SOUTH, Role.CASEWORKER)].split(".")
    wrong = f"cs1.{token_id}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    with server.client(wrong) as intruder:
        assert_error(intruder.get("/v1/holdings"), 401, "unauthenticated")
    with server.client("cs1.t_nosuchtoken.c2VjcmV0") as stranger:
        assert_error(stranger.get("/v1/holdings"), 401, "unauthenticated")

    with server.client(tokens[(SOUTH, Role.RECORDS_MANAGER)]) as south, \
            server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as north:
        about = entries(south, object=token_id)
        assert [(e["action"], e["outcome"]) for e in about] == [("token.create", "ok"), ("login.failed", "refused")]
        failed = about[1]
        assert failed["actor"] == user_name(SOUTH, Role.CASEWORKER) and failed["organisation"] == SOUTH
        assert failed["details"] == {"method": "token", "reason": "wrong token secret"}
        north_log = entries(north)
        assert entries(north, object=token_id) == [] and "login.failed" not in {e["action"] for e in north_log}
        # A token id nobody owns cannot go in any organisation's log.
        assert entries(north, object="t_nosuchtoken") == entries(south, object="t_nosuchtoken") == []
        assert south.post("/v1/audit/verify").status_code == 200


def test_since_with_a_utc_offset_means_the_same_moment(server: Server, tokens: Tokens) -> None:
    with server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as c:
        everything = entries(c)
        pick = everything[len(everything) // 2]
        moment = datetime.fromisoformat(pick["time"].replace("Z", "+00:00"))
        expected = [e for e in everything if e["time"] >= pick["time"]]
        assert 0 < len(expected) < len(everything)
        assert entries(c, since=pick["time"]) == expected
        for hours in (5, -5):
            local = moment.astimezone(timezone(timedelta(hours=hours))).isoformat()
            assert entries(c, since=local) == expected, local
