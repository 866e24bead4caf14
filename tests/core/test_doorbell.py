"""The doorbell: a share made by another process wakes the delivery worker at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from civicshare.doorbell import Listener, ring


def test_a_ring_from_another_process_wakes_the_listener_at_once(tmp_path: Path) -> None:
    bell = Listener(tmp_path / "run" / "delivery.bell")
    try:
        assert bell.listening and oct((tmp_path / "run" / "delivery.bell").stat().st_mode & 0o777) == "0o600"
        assert bell.wait(0.05) is False  # nobody rang
        code = f"from civicshare.doorbell import ring; import pathlib; assert ring(pathlib.Path({str(bell.path)!r}))"
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True)
        assert bell.wait(10) is True
        assert time.monotonic() - started < 5
        assert bell.wait(0.05) is False  # that ring was heard once
    finally:
        bell.close()


def test_a_burst_of_rings_wakes_once_and_a_full_pipe_still_counts_as_rung(tmp_path: Path) -> None:
    bell = Listener(tmp_path / "delivery.bell")
    try:
        for _ in range(50):
            assert ring(bell.path)
        assert bell.wait(1) is True and bell.wait(0.05) is False
        fd = os.open(bell.path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            with pytest.raises(BlockingIOError):
                while True:
                    os.write(fd, b"\0" * 65536)
        finally:
            os.close(fd)
        assert ring(bell.path) is True  # the pipe is full of rings: enough to wake the worker
        assert bell.wait(1) is True
    finally:
        bell.close()


def test_ringing_with_nobody_listening_does_nothing_and_never_blocks(tmp_path: Path) -> None:
    assert ring(tmp_path / "missing.bell") is False
    os.mkfifo(tmp_path / "unheard.bell", 0o600)
    started = time.monotonic()
    assert ring(tmp_path / "unheard.bell") is False  # no serve process has it open
    assert time.monotonic() - started < 1


def test_something_else_at_the_path_is_never_written_and_delivery_only_polls(tmp_path: Path) -> None:
    path = tmp_path / "delivery.bell"
    path.write_bytes(b"not a pipe")
    bell = Listener(path)
    assert not bell.listening and bell.wait(0.01) is False
    assert ring(path) is False
    assert path.read_bytes() == b"not a pipe"


def test_once_closed_nobody_listens_and_ringing_does_nothing(tmp_path: Path) -> None:
    bell = Listener(tmp_path / "delivery.bell")
    assert bell.listening and ring(bell.path) is True
    bell.close()
    assert not bell.listening and bell.wait(0.01) is False
    assert ring(bell.path) is False  # the pipe is still there, but no serve process holds it open
