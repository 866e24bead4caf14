"""``make serve`` (``civicshare demo --serve``): demo nodes with demo users, the sign-in sheet, Ctrl-C stops it."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.nodes import free_port
from tests.web.webnodes import WebClient

USER_LINE = re.compile(r"^  (north-wold|south-fen|east-marsh) +(demo-[a-z-]+) +([a-z_]+) +"
                       r"([a-z2-7]{4}(?:-[a-z2-7]{4}){3})$")
URL_LINE = re.compile(r"^  (http://127\.0\.0\.1:\d+)/web/  for (.*)$")


def _two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free loopback ports in a row")


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_until_ready(lines: queue.Queue[str | None], timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("demo --serve ended before it was ready:\n" + "\n".join(seen))
        seen.append(line)
        if line == "Press Ctrl-C to stop.":
            return seen
    raise AssertionError(f"demo --serve was not ready in {timeout:.0f} s:\n" + "\n".join(seen))


def test_serve_demo_prints_users_who_can_sign_in_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _two_free_ports()
    folder = tmp_path / "demo-serve"
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "civicshare", "demo", "--serve", "--port", str(port),
                             "--dir", str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out = _read_until_ready(_lines(proc), 180)
        urls = {m.group(1): m.group(2) for m in map(URL_LINE.match, out) if m}
        users = {(m.group(1), m.group(2)): (m.group(3), m.group(4)) for m in map(USER_LINE.match, out) if m}
        node_a, node_b = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
        assert set(urls) == {node_a, node_b}, out
        assert "north-wold" in urls[node_a] and "south-fen" in urls[node_a] and "east-marsh" in urls[node_b]
        assert {role for role, _ in users.values()} == {"admin", "dpo", "records_manager", "caseworker"}
        assert len(users) == 12 and len({pw for _, pw in users.values()}) == 12, users
        assert (folder / "node-a").is_dir() and (folder / "node-b").is_dir()

        # The printed users sign in; East Marsh's inbox already holds the residents North Wold sent.
        with WebClient(node_b) as east:
            east.signed_in("demo-records-manager", users[("east-marsh", "demo-records-manager")][1])
            dashboard = east.get("/web/")
            assert dashboard.status_code == 200 and "East Marsh District Council" in dashboard.text
            inbox = east.get("/web/inbox")
            if inbox.status_code != 404:  # the inbox page is checked here once it exists
                assert inbox.status_code == 200 and "north-wold" in inbox.text.lower().replace(" ", "-")
        with WebClient(node_a) as north:
            wrong = north.sign_in("demo-dpo", users[("south-fen", "demo-dpo")][1], org="north-wold")
            assert wrong.status_code == 400, "a password of another organisation's user must not sign in"
            north.signed_in("demo-dpo", users[("north-wold", "demo-dpo")][1], org="north-wold")
            assert "North Wold District Council" in north.get("/web/").text

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        for url in (node_a, node_b):
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{url}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_serve_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "civicshare", "demo", "--serve", "--port", str(_two_free_ports()),
                           "--dir", str(folder)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 1
    assert "was not made by `civicshare demo --serve`" in proc.stderr
    assert (folder / "notes.txt").read_text() == "keep me"
