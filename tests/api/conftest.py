"""API fixtures: a node with a user of every role in two councils, and a real server process over it.

The storage backends (``db_url``, SQLite and PostgreSQL) and the two-council ``node`` come from
tests/conftest.py, so every API test runs on both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from civicshare.access import Role
from civicshare.node import Node
from tests.conftest import PASSPHRASE

NORTH, SOUTH = "north-wold", "south-fen"
Tokens = dict[tuple[str, Role], str]


@pytest.fixture
def tokens(node: Node) -> Tokens:
    """An API token for a user of every role, in north-wold and in south-fen."""
    return {(org, role): node.add_user(org, f"{org} {role.value}", role)[1]
            for org in (NORTH, SOUTH) for role in Role}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """The response is the one JSON error shape, with this status and code; returns the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["version"] == 1 and error["code"] == code and error["message"], body
    assert "Traceback" not in response.text
    return error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real ``civicshare serve`` process on a loopback port."""

    proc: subprocess.Popen[bytes]
    base_url: str
    home: Path
    tmpdir: Path
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=auth(token) if token else None, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _start(home: Path, tmpdir: Path, extra: list[str], port: int | None = None) -> Server:
    tmpdir.mkdir(parents=True, exist_ok=True)
    log = tmpdir.parent / f"server-{len(list(tmpdir.parent.glob('server-*.log')))}.log"
    # The server's own TMPDIR is watched by the tests: nothing may be spooled there.
    env = {**os.environ, "CIVICSHARE_PASSPHRASE": PASSPHRASE, "TMPDIR": str(tmpdir)}
    for _attempt in range(3):
        chosen = port or _free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "civicshare", "--home", str(home), "serve", "--port", str(chosen),
                 *extra], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        server = Server(proc, f"http://127.0.0.1:{chosen}", home, tmpdir, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.05)
        server.stop()
        if "address already in use" not in log.read_text(errors="replace").lower():
            break  # only a lost race for the port is worth another try
    pytest.fail(f"the API server did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture
def start_server(node: Node, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts `civicshare serve` over the test node; keyword arguments become options (max_dataset_mb=1)."""
    started: list[Server] = []

    def start(**options: int) -> Server:
        node.close()  # the server process owns the database from here
        extra = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        server = _start(node.layout.home, tmp_path / "server-tmp", extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server], tokens: Tokens) -> Server:
    return start_server()


def start_home(home: Path, tmpdir: Path, port: int, *extra: str) -> Server:
    """Start `civicshare serve` over another node home on a chosen port (its card's URL names it)."""
    return _start(home, tmpdir, list(extra), port)


free_port = _free_port
