"""Measuring a stream: its size, its SHA-256 and the SHA-256 of each of its parts.

The sender measures the sealed payload for its manifest; the recipient measures what arrives. A
:class:`FileFollower` measures a file while another process is still writing it (reading back what
the page cache already holds), so the sealing process can write the payload itself instead of
passing every byte through this one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from civicshare.errors import UsageError
from civicshare.exchange.fields import Digest

CHUNK = 1024 * 1024


_hashers: ThreadPoolExecutor | None = None
_hashers_lock = threading.Lock()


def _hasher() -> ThreadPoolExecutor:
    """Threads that hash beside the caller (hashlib releases the GIL while it hashes)."""
    global _hashers
    with _hashers_lock:
        if _hashers is None:
            _hashers = ThreadPoolExecutor(2, "civicshare-hash")
        return _hashers


class StreamHash:
    """The size and SHA-256 of a stream fed to it, and the SHA-256 of each ``part_size`` slice.

    With ``parallel``, the whole stream's hash is computed in a helper thread while the caller hashes
    the parts, so the two hashes of each chunk take about the time of one where a second core is free.
    """

    def __init__(self, part_size: int | None = None, *, parallel: bool = False) -> None:
        self.size = 0
        self._whole = hashlib.sha256()
        self._part_size = part_size
        self._part = hashlib.sha256()
        self._part_filled = 0
        self._parts: list[str] = []
        self._recorded: str | None = None
        self._parallel = parallel

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data``; when this returns, ``data`` is no longer used (its buffer may be reused)."""
        self.size += len(data)
        if self._part_size is None:
            self._whole.update(data)
            return
        whole = _hasher().submit(self._whole.update, data) if self._parallel else None
        if whole is None:
            self._whole.update(data)
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._part_filled)
            self._part.update(view[:take])
            self._part_filled += take
            view = view[take:]
            if self._part_filled == self._part_size:
                self._parts.append(self._part.hexdigest())
                self._part, self._part_filled = hashlib.sha256(), 0
        if whole is not None:
            whole.result()

    def record(self, size: int, sha256: str) -> None:
        """Take the size and hash of a whole stream measured elsewhere (by the decrypting process)."""
        if self.size or self._part_size is not None:
            raise UsageError("Only a fresh whole-stream tally takes a digest measured elsewhere.")
        self.size, self._recorded = size, sha256

    def digest(self) -> Digest:
        return Digest(self.size, self._recorded or self._whole.hexdigest())

    @property
    def part_hashes(self) -> tuple[str, ...]:
        """The hash of every part so far, the last (shorter) one included."""
        tail = (self._part.hexdigest(),) if self._part_filled else ()
        return (*self._parts, *tail)


def hash_stream(src: BinaryIO, part_size: int | None = None) -> StreamHash:
    """Read ``src`` to its end and return its sizes and hashes."""
    tally = StreamHash(part_size)
    while chunk := src.read(CHUNK):
        tally.update(chunk)
    return tally


def hash_file(path: Path, part_size: int | None = None) -> StreamHash:
    with open(path, "rb") as fh:
        return hash_stream(fh, part_size)


class FileFollower:
    """Feeds ``tally`` with a file another process is writing, as it grows, from a thread of its own.

    Start it once the file exists; call :meth:`finish` after the writer has finished (it reads the
    rest, then checks that it measured the whole file) or :meth:`abandon` if the writing failed.
    """

    def __init__(self, path: Path, tally: StreamHash, *, poll: float = 0.005) -> None:
        self.tally = tally
        self._poll = poll
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._written = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="civicshare-follow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        view = memoryview(bytearray(CHUNK))
        written = False
        try:
            while True:
                count = os.readv(self._fd, [view])
                if count:
                    self.tally.update(view[:count])
                elif written:
                    return  # the writer had finished before this read found the end
                else:
                    written = self._written.wait(self._poll)
        except BaseException as exc:  # noqa: BLE001 - raised by finish() in the calling thread
            self._failure = exc

    def _stop(self) -> None:
        self._written.set()
        self._thread.join()

    def finish(self) -> StreamHash:
        """Read what is left (the writer must have finished) and return the tally of the whole file."""
        try:
            self._stop()
            if self._failure is not None:
                raise self._failure
            size = os.fstat(self._fd).st_size
        finally:
            os.close(self._fd)
        if self.tally.size != size:
            raise UsageError(f"The sealed payload is {size} bytes, but {self.tally.size} were measured.")
        return self.tally

    def abandon(self) -> None:
        """Stop following (the writing failed); nothing is raised."""
        try:
            self._stop()
        finally:
            os.close(self._fd)
