"""``/v1/card`` and ``/v1/partners`` through a real ``civicshare serve`` process, on SQLite and PostgreSQL.

north-wold and south-fen are hosted on one node, but pin each other exactly as two nodes would: from
the card one hands out to the other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from civicshare.access import Role
from civicshare.exchange.card import parse_card
from tests.api.conftest import NORTH, SOUTH, Server, Tokens, assert_error


def get_card(server: Server, token: str) -> dict[str, Any]:
    with server.client(token) as c:
        response = c.get("/v1/card")
    assert response.status_code == 200, response.text
    return dict(response.json())


def post(client: httpx.Client, card: Any, **params: Any) -> httpx.Response:
    content = card if isinstance(card, str | bytes) else json.dumps(card)
    return client.post("/v1/partners", content=content, params=params,
                       headers={"Content-Type": "application/json"})


def test_card_and_pinning_end_to_end(server: Server, tokens: Tokens) -> None:
    south_card = get_card(server, tokens[(SOUTH, Role.CASEWORKER)])  # any user may hand the card out
    card, _ = parse_card(json.dumps(south_card), now=datetime.now(UTC))
    assert (card.org_id, card.name) == (SOUTH, "South Fen Borough Council")

    with server.client(tokens[(NORTH, Role.ADMIN)]) as admin, \
            server.client(tokens[(NORTH, Role.RECORDS_MANAGER)]) as manager, \
            server.client(tokens[(SOUTH, Role.ADMIN)]) as south:
        created = post(admin, south_card)
        assert created.status_code == 201, created.text
        pinned = created.json()
        assert (pinned["organisation"], pinned["partner"], pinned["source"]) == (NORTH, SOUTH, "pinned")
        assert pinned["signing_key"] == south_card["body"]["signing_key"]
        assert pinned["added_by"] == f"{NORTH} {Role.ADMIN.value}"

        listed = manager.get("/v1/partners")
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"partners": [pinned]}
        shown = manager.get(f"/v1/partners/{SOUTH}")
        assert shown.status_code == 200 and shown.json() == {**pinned, "card": south_card}

        # south-fen's partners are its own: it has pinned nobody.
        assert south.get("/v1/partners").json() == {"partners": []}
        assert_error(south.get(f"/v1/partners/{SOUTH}"), 404, "not_found")
        assert_error(manager.get("/v1/partners/nobody-here"), 404, "not_found")

        entries = admin.get("/v1/audit/entries", params={"object": SOUTH}).json()["entries"]
        assert [(e["action"], e["outcome"], e["details"]["change"]) for e in entries] == [
            ("partner.add", "ok", "new")]


def test_roles_and_refusals(server: Server, tokens: Tokens) -> None:
    south_card = get_card(server, tokens[(SOUTH, Role.ADMIN)])
    north_card = get_card(server, tokens[(NORTH, Role.ADMIN)])
    with server.client(tokens[(NORTH, Role.CASEWORKER)]) as caseworker, \
            server.client(tokens[(NORTH, Role.ADMIN)]) as admin, server.client() as anonymous:
        assert "may not pin partners" in assert_error(post(caseworker, south_card), 403, "forbidden")["message"]
        assert_error(caseworker.get("/v1/partners"), 403, "forbidden")
        assert_error(caseworker.get(f"/v1/partners/{SOUTH}"), 403, "forbidden")
        assert_error(anonymous.get("/v1/card"), 401, "unauthenticated")
        assert_error(post(anonymous, south_card), 401, "unauthenticated")

        error = assert_error(post(admin, "not json at all"), 422, "invalid_input")
        assert "not valid JSON" in error["message"]
        broken = {**south_card, "body": {**south_card["body"], "age_recipient": "age1nope"}}
        error = assert_error(post(admin, broken), 422, "invalid_input")
        assert [p["field"] for p in error["problems"]] == ["age_recipient"]
        assert_error(post(admin, {**south_card, "version": 2}), 422, "invalid_input")

        tampered = {**south_card, "body": {**south_card["body"], "name": "Someone Else"}}
        assert "does not verify" in assert_error(post(admin, tampered), 403, "security")["message"]
        assert "does not pin itself" in assert_error(post(admin, north_card), 409, "conflict")["message"]
        assert_error(post(admin, b" " * (64 * 1024 + 1)), 413, "too_large")

        assert admin.get("/v1/partners").json() == {"partners": []}
        assert post(admin, south_card).status_code == 201
        assert post(admin, south_card, replace="true").status_code == 201
