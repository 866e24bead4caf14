"""Feeding a byte stream to DuckDB through a named pipe, so transcoded text never touches disk.

A :class:`FifoFeed` makes a private (0700) temporary directory holding one FIFO, and a thread that
writes the chunks of an iterator into it once DuckDB opens it for reading. It never deadlocks:

* the writer opens the FIFO non-blocking and polls, so if DuckDB fails before opening it the
  writer simply gives up when the feed is closed;
* if DuckDB stops reading early the writer gets ``BrokenPipeError`` and stops;
* on close, if the writer is still blocked in a write, the feed drains the pipe itself (in memory)
  until the writer notices it must stop.

The temporary directory is always removed. After use, :attr:`FifoFeed.completed` says whether every
chunk was delivered; anything else means DuckDB saw a truncated stream and its result must be
discarded. :attr:`FifoFeed.error` holds an exception raised by the iterator itself.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

_POLL_SECONDS = 0.002
_JOIN_SECONDS = 0.05


class FifoFeed:
    """Context manager yielding the FIFO path DuckDB should read."""

    def __init__(self, chunks: Iterable[bytes], *, work_dir: Path | None = None, name: str = "input.csv"):
        self._chunks = chunks
        self._work_dir = work_dir
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self.path: Path | None = None
        self.completed = False
        self.broken_pipe = False
        self.error: BaseException | None = None

    def __enter__(self) -> Path:
        if self._work_dir is not None:
            self._work_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="civicshare-feed-", dir=self._work_dir))
        try:
            os.chmod(self._dir, 0o700)
            self.path = self._dir / self._name
            os.mkfifo(self.path, 0o600)
            self._thread = threading.Thread(target=self._run, name="civicshare-fifo-feed", daemon=True)
            self._thread.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        return self.path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the writer (unblocking it if needed), wait for it, and remove the directory."""
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join(_JOIN_SECONDS)
                while self._thread.is_alive():
                    self._drain()
                    self._thread.join(_JOIN_SECONDS)
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def _drain(self) -> None:
        """Read and discard whatever is in the pipe, so a writer blocked in write() wakes up."""
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            while True:
                try:
                    if not os.read(fd, 1 << 16):
                        break
                except BlockingIOError:
                    break
        finally:
            os.close(fd)

    def _open_for_writing(self) -> int | None:
        assert self.path is not None
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: nobody has opened it for reading yet
                    raise
                self._stop.wait(_POLL_SECONDS)
                continue
            os.set_blocking(fd, True)
            return fd
        return None

    def _run(self) -> None:
        fd: int | None = None
        iterator: Iterator[bytes] | None = None
        try:
            fd = self._open_for_writing()
            if fd is None:
                return
            iterator = iter(self._chunks)
            for chunk in iterator:
                view = memoryview(chunk)
                while view:
                    if self._stop.is_set():
                        return
                    written = os.write(fd, view)
                    view = view[written:]
            self.completed = True
        except BrokenPipeError:
            self.broken_pipe = True
        except BaseException as exc:  # handed to the caller through .error
            self.error = exc
        finally:
            if fd is not None:
                os.close(fd)
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    if self.error is None:
                        self.error = exc
