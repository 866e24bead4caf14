"""One real node hosting two organisations (a shared-service centre), for the web's security tests.

north-wold and south-fen each have a user of every role (with a password), a document of their own,
and each pins the other's card. South Fen agreed with North Wold to send it plain-text documents and
sent it a second document (delivered, receipt verified); it also keeps a draft agreement it never proposed. So South
Fen has a holding, an outbound transfer, a private draft, keys and audit entries that North Wold's
users must never see. Set-up goes through the real CLI and the serving node's API.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.nodes import NodeError, NodeHome, wait_for
from tests.web.webnodes import ROLES, SERVE, add_web_user

NORTH, SOUTH = "north-wold", "south-fen"
TITLES = {NORTH: "North Wold parking note", SOUTH: "South Fen confidential note"}
# South Fen's second document, the one it sends to North Wold (North Wold then holds a copy of it).
SHARED, SHARED_TITLE = "shared", "South Fen guidance for partners"


def user_name(org: str, role: str) -> str:
    return f"{org}-{role}".replace("_", "-")


@dataclass
class Estate:
    node: NodeHome
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (org, role) -> API token
    holding: dict[str, str] = field(default_factory=dict)  # org (or SHARED) -> a document's holding id
    agreement: str = ""  # south-fen -> north-wold, active
    draft: str = ""  # south-fen's own draft, never proposed
    transfer: str = ""  # south-fen's delivered share to north-wold

    def api(self, org: str, role: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[org, role]}", **kwargs.pop("headers", {})}
        answer = httpx.request(method, self.node.base_url + path, headers=headers, timeout=60, **kwargs)
        if answer.status_code >= 300:
            raise NodeError(f"{method} {path} as {org} {role} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def exists(self, org: str, holding_id: str) -> bool:
        """Whether the holding is still there, unshredded (read through the API)."""
        answer = httpx.get(f"{self.node.base_url}/v1/holdings/{holding_id}", timeout=60,
                           headers={"Authorization": f"Bearer {self.tokens[org, 'admin']}"})
        return answer.status_code == 200 and answer.json().get("state") == "held"

    def audit(self, org: str, actor: str) -> list[dict[str, Any]]:
        return list(self.api(org, "admin", "GET", "/v1/audit/entries", params={"actor": actor})["entries"])


def _agreement_body(template: str) -> str:
    body = yaml.safe_load(template)
    body["data_items"]["media_types"] = ["text/plain"]
    return json.dumps(body, default=str)


def build(root: Path) -> Estate:
    """Make, start and fill the node; the caller closes ``estate.node`` (a failed set-up closes it here)."""
    node = NodeHome.create(root, NORTH, "North Wold District Council")
    estate = Estate(node)
    try:
        _fill(estate)
    except BaseException:
        node.close()
        raise
    return estate


def _fill(estate: Estate) -> None:
    node = estate.node
    node.run("org", "add", "--org", SOUTH, "--name", "South Fen Borough Council")
    keys = [(org, role) for org in (NORTH, SOUTH) for role in ROLES]
    with ThreadPoolExecutor(4) as pool:
        made = pool.map(lambda key: add_web_user(node, user_name(*key), key[1], org=key[0]), keys)
        template = pool.submit(node.run, "agreement", "template", "--provider", SOUTH, "--recipient", NORTH,
                               "--documents", "--org", SOUTH)
        estate.tokens = dict(zip(keys, made, strict=True))
        body = _agreement_body(template.result().out)
    node.start(*SERVE)
    for org, other in ((NORTH, SOUTH), (SOUTH, NORTH)):
        card = estate.api(other, "admin", "GET", "/v1/card")
        estate.api(org, "admin", "POST", "/v1/partners", content=json.dumps(card),
                   headers={"Content-Type": "application/json"})
    for org, title in ((NORTH, TITLES[NORTH]), (SOUTH, TITLES[SOUTH]), (SHARED, SHARED_TITLE)):
        estate.holding[org] = estate.api(
            SOUTH if org == SHARED else org, "records_manager", "POST", "/v1/holdings/documents",
            params={"filename": "note.txt", "title": title}, content=f"{title}\n".encode(),
            headers={"Content-Type": "application/octet-stream"})["id"]
    json_body = {"headers": {"Content-Type": "application/json"}}
    created = estate.api(SOUTH, "records_manager", "POST", "/v1/agreements", content=body, **json_body)
    estate.agreement, version = created["id"], created["version"]
    draft = {**json.loads(body), "purpose": "A draft South Fen keeps to itself."}
    estate.draft = estate.api(SOUTH, "records_manager", "POST", "/v1/agreements", content=json.dumps(draft),
                              **json_body)["id"]
    estate.api(SOUTH, "records_manager", "POST", f"/v1/agreements/{estate.agreement}/propose",
               params={"version": version})

    def shown(org: str) -> dict[str, Any] | None:
        answer = httpx.get(f"{node.base_url}/v1/agreements/{estate.agreement}", params={"version": version},
                           headers={"Authorization": f"Bearer {estate.tokens[org, 'dpo']}"}, timeout=60)
        return dict(answer.json()) if answer.status_code == 200 else None

    wait_for(lambda: shown(NORTH), 60, what="the proposal to reach north-wold")
    for org in (NORTH, SOUTH):
        estate.api(org, "dpo", "POST", f"/v1/agreements/{estate.agreement}/sign", params={"version": version})
    for org in (NORTH, SOUTH):
        wait_for(lambda org=org: (seen := shown(org)) is not None and not seen["waiting_for"], 60,
                 what=f"the agreement to be signed by both at {org}")
    estate.transfer = estate.api(SOUTH, "records_manager", "POST", f"/v1/holdings/{estate.holding[SHARED]}/share",
                                 json={"to": NORTH, "agreement": estate.agreement})["id"]
    wait_for(lambda: estate.api(SOUTH, "records_manager", "GET", f"/v1/transfers/{estate.transfer}")["state"]
             == "delivered", 90, what=f"{estate.transfer} to be delivered")
