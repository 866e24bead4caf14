"""Writing large files around the page cache, and falling back to it where direct I/O is refused."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.crypto import directwrite
from civicshare.crypto.datakeys import Sink, write_new_file
from civicshare.crypto.directwrite import DirectWriter

BLOCK = 4096


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    opened = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    yield opened
    os.close(opened)


def _direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _supports_direct(folder: Path) -> bool:
    probe = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        return directwrite._set_direct(probe, True)
    finally:
        os.close(probe)
        (folder / "probe").unlink()


def _write(fd: int, pieces: list[bytes], buffer_size: int = 2 * BLOCK) -> DirectWriter:
    writer = DirectWriter(fd, buffer_size)
    try:
        for piece in pieces:
            writer.write(piece)
        writer.finish()
    finally:
        writer.close()
    return writer


def test_whole_blocks_go_around_the_page_cache_and_the_tail_through_it(tmp_path: Path, fd: int) -> None:
    if not _supports_direct(tmp_path):
        pytest.skip(f"the file system of {tmp_path} refuses direct I/O, so there is nothing to measure")
    data = os.urandom(3 * 2 * BLOCK + 123)
    writer = DirectWriter(fd, 2 * BLOCK)
    assert writer.direct and _direct(fd)
    writer.write(data[:5000])
    writer.write(memoryview(data)[5000:])
    # Only whole buffers so far (the last may still be on its way); the tail waits for finish.
    assert os.fstat(fd).st_size in (2 * 2 * BLOCK, 3 * 2 * BLOCK)
    writer.finish()
    assert not writer.direct and not _direct(fd)
    assert (tmp_path / "blob").read_bytes() == data


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3 * BLOCK), max_size=12))
def test_any_pieces_are_written_exactly(tmp_path_factory: pytest.TempPathFactory, pieces: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("direct") / "blob"
    opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write(opened, pieces)
    finally:
        os.close(opened)
    assert path.read_bytes() == b"".join(pieces)


def test_an_unaligned_start_is_written_through_the_page_cache(tmp_path: Path, fd: int) -> None:
    os.write(fd, b"x" * 100)
    data = os.urandom(5 * BLOCK)
    writer = _write(fd, [data])
    assert not writer.direct and not _direct(fd)
    assert (tmp_path / "blob").read_bytes() == b"x" * 100 + data


def test_a_refused_direct_write_finishes_through_the_page_cache(tmp_path: Path, fd: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if not _supports_direct(tmp_path):
        pytest.skip(f"the file system of {tmp_path} refuses direct I/O already")
    real, refused = os.write, []

    def write(target: int, data: bytes) -> int:
        if target == fd and _direct(target):
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(target, data)

    monkeypatch.setattr(directwrite.os, "write", write)
    data = os.urandom(7 * BLOCK + 1)
    writer = _write(fd, [data])
    assert refused == [2 * BLOCK] and not writer.direct
    assert (tmp_path / "blob").read_bytes() == data


def test_a_short_direct_write_is_completed(tmp_path: Path, fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _supports_direct(tmp_path):
        pytest.skip(f"the file system of {tmp_path} refuses direct I/O already")
    real = os.write
    monkeypatch.setattr(directwrite.os, "write",
                        lambda target, data: real(target, data[:BLOCK] if _direct(target) else data))
    data = os.urandom(6 * BLOCK + 5)
    _write(fd, [data])
    assert (tmp_path / "blob").read_bytes() == data


def test_a_full_disk_is_reported_not_hidden(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(target: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = DirectWriter(fd, 2 * BLOCK)
    monkeypatch.setattr(directwrite.os, "write", full)
    with pytest.raises(OSError) as caught:
        writer.write(os.urandom(2 * BLOCK))
        writer.finish()
    writer.close()
    assert caught.value.errno == errno.ENOSPC


def test_the_buffer_is_whole_blocks(fd: int) -> None:
    with pytest.raises(ValueError, match="whole number"):
        DirectWriter(fd, 1000)


def test_write_new_file_direct_gives_no_descriptor_and_cleans_up_on_failure(tmp_path: Path) -> None:
    data = os.urandom(3 * directwrite.BUFFER_SIZE // 2)
    seen = []

    def produce(sink: Sink) -> None:
        seen.append(sink.fd)
        sink.write(data)

    write_new_file(tmp_path / "kept", produce, direct=True)
    assert seen == [None] and (tmp_path / "kept").read_bytes() == data

    def fail(sink: Sink) -> None:
        sink.write(data)
        raise RuntimeError("the stream broke")

    with pytest.raises(RuntimeError):
        write_new_file(tmp_path / "lost", fail, direct=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
