"""Writing a large file around the page cache (``O_DIRECT``), where the file system allows it.

A received document's blob is written once and read again only when somebody opens the holding.
Written through the page cache, every gigabyte first takes a gigabyte of the machine's memory, which
the kernel must find and later write back. On a virtual machine whose host takes freed memory back,
finding it cost more system time than the rest of the receive (measured: 1.5 s of system time per
GiB against 0.02 s written directly). Written directly, the bytes go from one reused, page-aligned
buffer to the disk, and the machine's memory is left to what is actually read.

Direct I/O needs whole, aligned blocks: the writer gathers the stream into a buffer and writes it
when it is full (in a helper thread, while it fills a second one); the last, partial block goes
through the page cache after the writer turns direct I/O off again. Where the file system refuses
direct I/O (older tmpfs, some network file systems), every write goes through the page cache as
usual. Either way the caller still fsyncs the file.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor

from civicshare.crypto.atomicfile import write_all

# A whole number of pages (and of any disk's logical blocks); large writes keep the disk busy.
BUFFER_SIZE = 8 * 1024 * 1024
_ALIGNMENT = 4096


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False where the file system does not support it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    wanted = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, wanted)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return True


class DirectWriter:
    """Writes a stream to ``fd`` (opened for writing, at an aligned offset) around the page cache.

    Call :meth:`write` with the data in pieces of any size, then :meth:`finish`, then fsync ``fd``;
    :meth:`close` frees the buffers (also after a failure). Only this writer may write to ``fd``
    meanwhile. A direct write waits for the disk, so one helper thread writes each full buffer while
    the caller fills the other: the caller waits only when the disk falls behind.
    """

    def __init__(self, fd: int, buffer_size: int = BUFFER_SIZE) -> None:
        if buffer_size <= 0 or buffer_size % _ALIGNMENT:
            raise ValueError(f"the buffer is a whole number of {_ALIGNMENT}-byte blocks")
        self._fd = fd
        self._buffers: list[mmap.mmap] = []
        self._current = 0
        self._filled = 0
        self._pending: Future[bool] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._direct = False
        aligned = os.lseek(fd, 0, os.SEEK_CUR) % _ALIGNMENT == 0
        if hasattr(os, "O_DIRECT") and aligned and _set_direct(fd, True):
            self._buffers = [mmap.mmap(-1, buffer_size) for _ in range(2)]
            self._pool = ThreadPoolExecutor(1, "civicshare-direct-write")
            self._direct = True

    @property
    def direct(self) -> bool:
        """Whether the writes still go around the page cache."""
        return self._direct

    def write(self, data: bytes | memoryview) -> None:
        if not self._direct:
            write_all(self._fd, data)
            return
        view = memoryview(data).cast("B")
        while view:
            buffer = self._buffers[self._current]
            take = min(len(view), len(buffer) - self._filled)
            buffer[self._filled:self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == len(buffer):
                self._hand_over()
                if not self._direct:  # direct I/O was refused on the way: the rest goes as usual
                    write_all(self._fd, view)
                    return

    def _hand_over(self) -> None:
        """Give the full buffer to the helper and go on with the other one."""
        self._wait()  # the previous buffer first: the blocks reach the file in order
        if not self._direct:
            self._write_cached(self._current, 0, self._filled)
            self._filled = 0
            return
        assert self._pool is not None
        self._pending = self._pool.submit(self._write_block, self._current, self._filled)
        self._current ^= 1
        self._filled = 0

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if not pending.result():  # a failure of the write is raised here, in the caller's thread
                self._direct = False

    def _write_block(self, index: int, length: int) -> bool:
        """Write buffer ``index`` directly (in the helper thread); False if it had to go through the cache."""
        block = memoryview(self._buffers[index])[:length]
        try:
            written = os.write(self._fd, block)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # a full disk or a failing one is the caller's to report
                raise
            written = 0  # the file system takes direct I/O only for some files or offsets
        finally:
            block.release()
        if written == length:
            return True
        # A short or refused direct write: the rest of this buffer, and all that follows, go as usual.
        _set_direct(self._fd, False)
        self._write_cached(index, written, length)
        return False

    def _write_cached(self, index: int, start: int, end: int) -> None:
        """Write bytes ``start`` to ``end`` of buffer ``index`` (direct I/O must be off by now)."""
        block = memoryview(self._buffers[index])[start:end]
        try:
            write_all(self._fd, block)
        finally:
            block.release()

    def finish(self) -> None:
        """Write the last, partial block (through the page cache) and free the buffers."""
        if not self._buffers:
            return
        self._wait()
        _set_direct(self._fd, False)
        self._direct = False
        self._write_cached(self._current, 0, self._filled)
        self.close()

    def close(self) -> None:
        """Free the buffers without writing what they hold (after a failure; harmless after finish)."""
        self._direct = False
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # never free a buffer the helper is still writing
            self._pool = None
        self._pending = None
        for buffer in self._buffers:
            buffer.close()
        self._buffers = []
