"""Throwaway ``civicshare serve`` processes for the demo: started on loopback, stopped by their own pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from civicshare.errors import CivicshareError

STARTUP_SECONDS = 30.0


class DemoFailed(CivicshareError):
    code = "demo_failed"


def check(ok: bool, what: str) -> None:
    """Every promise the demo shows is checked; a broken one stops it with this message."""
    if not ok:
        raise DemoFailed(f"Demo check failed: {what}")


def free_port() -> int:
    """A loopback port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(home: Path, port: int, passphrase: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``civicshare serve`` for ``home`` on 127.0.0.1:``port`` until the block ends."""
    env = {**os.environ, "CIVICSHARE_PASSPHRASE": passphrase}
    log = (home / "tmp" / "serve.log").open("wb")
    # Our own interpreter and fixed arguments: nothing here comes from outside.
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "civicshare", "--home", str(home), "serve", "--host", "127.0.0.1",
         "--port", str(port), "--deliver-every", "0.5", "--retention-every", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, home)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, home: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CivicshareError(f"The node for {home} stopped at start-up; see {home / 'tmp' / 'serve.log'}.")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise CivicshareError(f"The node for {home} did not answer on port {port} within {STARTUP_SECONDS:.0f} s.")
