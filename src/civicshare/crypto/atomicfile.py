"""Crash-safe file replacement and inter-process locks for key files.

``atomic_write`` writes a private (0600) temporary file in the same directory, fsyncs it, moves it
into place with ``os.replace`` and fsyncs the directory: after a crash the path holds either the old
contents or the new, never a mixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from civicshare.errors import Conflict

PRIVATE_FILE_MODE = 0o600


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (blocking), however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    _fsync(directory, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    """Force a file's contents to the disk, whoever wrote them (an fsync covers every writer's data)."""
    _fsync(path, os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def synced_as_written(fd: int, every: float = 0.25) -> Iterator[None]:
    """While the block writes a large file to ``fd``, push what it wrote so far to the disk every
    ``every`` seconds (in a thread), so the fsync that makes the file durable at the end has only
    the last moment's writes left to wait for instead of the whole file."""
    stop = threading.Event()

    def push() -> None:
        while not stop.wait(every):
            with contextlib.suppress(OSError):  # the final fsync reports any real failure
                os.fdatasync(fd)

    thread = threading.Thread(target=push, name="civicshare-writeback", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def open_private(path: Path, *, exclusive: bool = False) -> int:
    """Open ``path`` for writing with mode 0600 (truncating, or failing if it exists when exclusive)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # the file may have existed with another mode
    return fd


def atomic_write(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the file is mode 0600.

    With ``overwrite=False`` an existing ``path`` raises ``Conflict`` and is left untouched (the new
    file is linked into place, which fails rather than replaces).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = open_private(tmp, exclusive=True)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise Conflict(f"{path} already exists; it was not overwritten.") from None
            os.unlink(tmp)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (a 0600 lock file, created if need be)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
