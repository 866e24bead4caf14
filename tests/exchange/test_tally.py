"""Measuring streams, and files while another process still writes them (the sealed payload)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.errors import UsageError
from civicshare.exchange.tally import FileFollower, StreamHash, hash_file


def _write_slowly(path: Path, pieces: list[bytes], pause: float) -> None:
    with path.open("ab", buffering=0) as fh:
        for piece in pieces:
            fh.write(piece)
            time.sleep(pause)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 300_000), max_size=12), part_size=st.integers(1, 200_000),
       pause=st.sampled_from([0.0, 0.001, 0.01]))
def test_following_a_growing_file_measures_exactly_what_was_written(tmp_path_factory: pytest.TempPathFactory,
                                                                    sizes: list[int], part_size: int,
                                                                    pause: float) -> None:
    path = tmp_path_factory.mktemp("follow") / "payload.age"
    path.touch()
    rng = random.Random(len(sizes) * 7919 + part_size)
    pieces = [rng.randbytes(n) for n in sizes]
    follower = FileFollower(path, StreamHash(part_size, parallel=True), poll=0.001)
    writer = threading.Thread(target=_write_slowly, args=(path, pieces, pause))
    writer.start()
    writer.join()
    tally = follower.finish()
    expected = hash_file(path, part_size)
    assert tally.digest() == expected.digest()
    assert tally.digest().sha256 == hashlib.sha256(b"".join(pieces)).hexdigest()
    assert tally.part_hashes == expected.part_hashes


def test_following_a_file_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "payload.age"
    path.touch()
    follower = FileFollower(path, StreamHash(1 << 20))
    # 8 MiB in 64 KiB writes, as the age command writes its output.
    script = ("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
              "for i in range(128):\n    os.write(fd, bytes([i]) * 65536)\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    tally = follower.finish()
    assert tally.size == 8 << 20
    assert tally.digest().sha256 == hashlib.sha256(b"".join(bytes([i]) * 65536 for i in range(128))).hexdigest()
    assert len(tally.part_hashes) == 8


def test_a_file_that_changes_behind_the_follower_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "payload.age"
    path.write_bytes(os.urandom(100_000))
    follower = FileFollower(path, StreamHash(4096), poll=0.001)
    time.sleep(0.2)  # it has read all of it by now
    with path.open("r+b") as fh:
        fh.truncate(50_000)  # something else shortened the file: what was measured is not the file
    with pytest.raises(UsageError, match="were measured"):
        follower.finish()


def test_abandoning_stops_the_thread_and_raises_nothing(tmp_path: Path) -> None:
    path = tmp_path / "payload.age"
    path.write_bytes(b"partial")
    follower = FileFollower(path, StreamHash(4))
    follower.abandon()
    assert not any(t.name == "civicshare-follow" and t.is_alive() for t in threading.enumerate())
