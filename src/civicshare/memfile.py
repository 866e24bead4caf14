"""Files that live only in memory (Linux memfd), for data that must never touch the disk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from civicshare.crypto.atomicfile import write_all


@contextmanager
def memory_file(name: str = "civicshare", data: bytes | None = None) -> Iterator[tuple[int, Path]]:
    """An anonymous in-memory file and a path other libraries can open it by; freed on exit."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        if data is not None:
            write_all(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
        yield fd, Path(f"/proc/{os.getpid()}/fd/{fd}")
    finally:
        os.close(fd)


def writes_in_place(path: Path) -> bool:
    """True for an in-memory file (a memfd's /proc/PID/fd/N) or a device: nothing can be renamed
    into place beside it, and nothing stays behind once it is closed, so it is written directly."""
    return Path(path).parts[:2] in (("/", "proc"), ("/", "dev"))
