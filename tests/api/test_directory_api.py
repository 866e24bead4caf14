"""Signed node-to-node requests against real `civicshare serve` processes, and directories over HTTP.

The first tests run over the two-council ``node`` on both backends. The last one runs two node homes
side by side: a directory published by one, trusted by the other, and a revocation that takes
effect at the other within a minute of being published.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from civicshare.access import Role
from civicshare.crypto import KdfParams
from civicshare.exchange.httpsig import new_nonce, sign_request
from civicshare.node import Node
from tests.api.conftest import (
    NORTH,
    SOUTH,
    Server,
    Tokens,
    assert_error,
    auth,
    free_port,
    start_home,
)
from tests.cli.conftest import Cli
from tests.conftest import PASSPHRASE
from tests.exchange.test_directory import EAST, NAME, admin, card_of

Signer = Callable[[bytes], bytes]


def signer_of(node: Node, org: str) -> Signer:
    key_id, _ = node.keys.signing_key(org)
    store = node.keystore(org)
    return lambda data: store.sign(key_id, data)


def ping(server: Server, sender: str, sign: Signer, *, org: str = SOUTH, now: datetime | None = None,
         nonce: str | None = None) -> httpx.Request:
    request = httpx.Request("GET", f"{server.base_url}/orgs/{org}/ping")
    sign_request(request, sender=sender, sign=sign, now=now or datetime.now(UTC),
                 nonce=nonce or new_nonce(os.urandom))
    return request


@pytest.fixture
def north_signer(node: Node) -> Signer:
    """south-fen pins north-wold; north-wold's signer, taken before the server owns the database."""
    node.add_partner(admin(SOUTH), card_of(node, NORTH))
    return signer_of(node, NORTH)


def test_signed_pings_pass_and_every_refusal_is_audited(north_signer: Signer, server: Server,
                                                        tokens: Tokens) -> None:
    with httpx.Client(timeout=30) as client:
        request = ping(server, NORTH, north_signer)
        answer = client.send(request)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"version": 1, "organisation": SOUTH, "sender": NORTH}
        assert_error(client.send(request), 409, "replayed")
        assert_error(client.send(ping(server, EAST, Ed25519PrivateKey.generate().sign)), 403, "unknown_sender")
        assert_error(client.send(ping(server, NORTH, Ed25519PrivateKey.generate().sign)), 401, "bad_signature")
        stale = ping(server, NORTH, north_signer, now=datetime.now(UTC) - timedelta(minutes=6))
        assert "more than 5 minutes" in assert_error(client.send(stale), 401, "bad_signature")["message"]
        assert_error(client.get(f"{server.base_url}/orgs/south-fen/ping"), 401, "bad_signature")
        assert_error(client.send(ping(server, NORTH, north_signer, org="west-fen")), 404, "not_found")
        # This node operates no directory, and trusts none yet.
        assert_error(client.get(f"{server.base_url}/directory.json"), 404, "not_found")
        listed = client.get(f"{server.base_url}/v1/directories", headers=auth(tokens[(SOUTH, Role.ADMIN)]))
        assert listed.status_code == 200 and listed.json() == {"directories": []}

    with Node.open(server.home) as reader:
        refused = [e for e in reader.audit.entries(SOUTH) if e.action == "exchange.refused"]
        assert [(e.details["sender"], e.details["code"]) for e in refused] == [
            (NORTH, "replayed"), (EAST, "unknown_sender"), (NORTH, "bad_signature"), (NORTH, "bad_signature"),
            (None, "bad_signature")]
        assert all(e.details["path"] == "/orgs/south-fen/ping" and e.details["method"] == "GET" for e in refused)
        assert [e for e in reader.audit.entries(NORTH) if e.action == "exchange.refused"] == []


# Two nodes ----------------------------------------------------------------------------------------


def _home(path: Path, org: str, port: int) -> Node:
    return Node.init(path, org, f"{org.replace('-', ' ').title()} Council", url=f"http://127.0.0.1:{port}",
                     passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests())


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Node A (north-wold, which operates the directory, and east-marsh); node B (south-fen)."""
    port_a, port_b = free_port(), free_port()
    with _home(tmp_path / "a", NORTH, port_a) as a, _home(tmp_path / "b", SOUTH, port_b) as b:
        a.add_organisation(EAST, "East Marsh Council")
        a.directory_init(admin(NORTH), NAME)
        for home, org in ((a, NORTH), (a, EAST), (b, SOUTH)):
            a.directory_add(admin(NORTH), card_of(home, org))
        a.directory_publish(admin(NORTH))
        # east-marsh finds south-fen through the directory too (read from the published file).
        a.use_directory(admin(EAST), str(a.directory.published_path))
    servers: list[Server] = []
    try:
        servers.append(start_home(tmp_path / "a", tmp_path / "a-tmp", port_a, "--directory-refresh", "1"))
        servers.append(start_home(tmp_path / "b", tmp_path / "b-tmp", port_b, "--directory-refresh", "1"))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def test_a_revocation_published_by_the_operator_is_obeyed_within_a_minute(
        two_nodes: tuple[Server, Server], tmp_path: Path) -> None:
    node_a, node_b = two_nodes
    cli_a, cli_b = Cli(node_a.home, tmp_path / "cli-a"), Cli(node_b.home, tmp_path / "cli-b")
    published = httpx.get(f"{node_a.base_url}/directory.json", timeout=10)
    assert published.status_code == 200 and published.json()["body"]["serial"] == 1

    used = cli_b("directory", "use", f"{node_a.base_url}/directory.json", "--json")
    assert used.code == 0, used.err
    trusted = used.json()
    assert (trusted["name"], trusted["serial"], trusted["change"]) == (NAME, 1, "new")

    with Node.open(node_a.home, passphrase=PASSPHRASE) as a, a.partner_client(timeout=10) as client:
        answer = client.request(EAST, SOUTH, "GET", "/ping")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"version": 1, "organisation": SOUTH, "sender": EAST}

        revoked = cli_a("directory", "revoke", EAST, "--org", NORTH, "--reason", "signing key lost")
        assert revoked.code == 0, revoked.err
        publish = cli_a("directory", "publish", "--org", NORTH)
        assert publish.code == 0, publish.err
        published_at = time.monotonic()
        while True:
            answer = client.request(EAST, SOUTH, "GET", "/ping")
            if answer.status_code != 200:
                break
            assert time.monotonic() - published_at < 60, "south-fen still accepts east-marsh a minute later"
            time.sleep(0.25)
    error = assert_error(answer, 403, "partner_revoked")
    assert error["message"].startswith(f"east-marsh was revoked by the directory {NAME} on ")
    assert error["message"].endswith(": signing key lost.")

    with Node.open(node_b.home) as b:
        refused = [e for e in b.audit.entries(SOUTH) if e.action == "exchange.refused"][-1]
        assert (refused.object, refused.details["code"]) == (EAST, "partner_revoked")
        trust = [(e.actor, e.details["change"]) for e in b.audit.entries(SOUTH) if e.action == "directory.trust"]
        assert trust[0][1] == "new" and trust[-1] == ("node:directory-refresh", "newer")
    listed = cli_b("directory", "show", NAME, "--json")
    assert listed.code == 0 and listed.json()["edition"]["revocations"][0]["org_id"] == EAST
