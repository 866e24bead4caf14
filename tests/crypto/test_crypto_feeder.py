"""The feeder thread that copies a source into a helper process's stdin."""

from __future__ import annotations

import io
import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.crypto.agetool import FEED, PIPE_SIZE, Feeder


class _ReadOnly:
    """A source with ``read`` only (an upload stream, say)."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)
        self.sizes: list[int] = []

    def read(self, n: int = -1) -> bytes:
        self.sizes.append(n)
        return self._src.read(n)


class _Broken(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        raise OSError("the upload was cut off")


def _feed(src: object) -> tuple[bytes, Feeder]:
    r, w = os.pipe()
    feeder = Feeder(src, w)  # type: ignore[arg-type]
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 1 << 16), b"")))
    reader.start()
    feeder.thread.start()
    feeder.thread.join()
    reader.join()
    os.close(r)
    return b"".join(chunks), feeder


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3 * FEED + 7), readinto=st.booleans())
def test_the_feeder_copies_every_byte_once(data: bytes, readinto: bool) -> None:
    src = io.BufferedReader(io.BytesIO(data)) if readinto else _ReadOnly(data)
    copied, feeder = _feed(src)
    assert copied == data
    assert feeder.count == len(data) and feeder.failure is None


def test_a_source_that_can_fill_a_buffer_is_read_a_pipe_full_at_a_time() -> None:
    sizes: list[int] = []

    class Recording(io.BytesIO):
        def readinto(self, buffer: object) -> int:
            sizes.append(len(buffer))  # type: ignore[arg-type]
            return super().readinto(buffer)  # type: ignore[arg-type]

    data = os.urandom(2 * PIPE_SIZE + 1)
    copied, _feeder = _feed(Recording(data))
    assert copied == data
    assert set(sizes) == {PIPE_SIZE}  # one reused buffer, never a fresh one per piece


def test_a_read_only_source_is_read_feed_bytes_at_a_time() -> None:
    src = _ReadOnly(os.urandom(FEED + 1))
    copied, _feeder = _feed(src)
    assert len(copied) == FEED + 1 and set(src.sizes) == {FEED}


def test_a_failing_source_is_recorded_for_the_caller_and_the_pipe_closed() -> None:
    copied, feeder = _feed(_Broken())
    assert copied == b""
    assert isinstance(feeder.failure, OSError) and "cut off" in str(feeder.failure)


class _Pieces:
    """A source that hands out its own buffers (the staged parts of a transfer, say)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.buffers: list[int] = []

    def pieces(self, buffer: memoryview):  # type: ignore[no-untyped-def]
        self.buffers.append(len(buffer))
        for chunk in self.chunks:
            yield memoryview(chunk)

    def readinto(self, buffer: object) -> int:
        raise AssertionError("a source with pieces is not read into the feeder's buffer")


@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3 * FEED), max_size=5))
def test_a_source_with_pieces_is_written_from_its_own_buffers(chunks: list[bytes]) -> None:
    src = _Pieces(chunks)
    copied, feeder = _feed(src)
    assert copied == b"".join(chunks)
    assert feeder.count == len(copied) and feeder.failure is None
    assert src.buffers == [PIPE_SIZE]  # it may use the feeder's one reused buffer for what it reads
