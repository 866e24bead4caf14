"""Writing large files so that making them durable at the end costs little."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from civicshare.crypto import atomicfile
from civicshare.crypto.atomicfile import synced_as_written


def test_what_was_written_is_pushed_to_the_disk_while_writing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(atomicfile.os, "fdatasync", lambda fd: (synced.append(os.fstat(fd).st_size), real(fd)))
    fd = os.open(tmp_path / "large", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with synced_as_written(fd, every=0.05):
            for _ in range(8):
                os.write(fd, os.urandom(64 * 1024))
                time.sleep(0.04)
        after = len(synced)
        time.sleep(0.15)
        assert len(synced) == after  # the thread ended with the block
    finally:
        os.close(fd)
    assert after >= 3
    assert synced == sorted(synced) and 0 < synced[0] < 8 * 64 * 1024  # pushed part way, as it grew
    assert (tmp_path / "large").stat().st_size == 8 * 64 * 1024
    assert not [t for t in threading.enumerate() if t.name == "civicshare-writeback"]


def test_a_failure_in_the_block_still_ends_the_thread(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(RuntimeError), synced_as_written(fd, every=0.01):
            raise RuntimeError("the producer failed")
    finally:
        os.close(fd)
    assert not [t for t in threading.enumerate() if t.name == "civicshare-writeback"]
