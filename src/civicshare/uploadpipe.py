"""An upload streamed through a pipe into the core, which reads it in a worker thread.

The API (civicshare.api.holdings) and the web pages (civicshare.web.streaming) both pass a document's
bytes into a pipe as they arrive; the core reads the other end and encrypts as it goes, so the
document is never whole in memory and never on disk unencrypted. End of file reaches the core only
once the whole upload has arrived; an upload abandoned or refused first makes the core's read raise
instead, so nothing is stored.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from civicshare.errors import CivicshareError, UsageError

CHUNK = 1024 * 1024
T = TypeVar("T")


def interrupted() -> UsageError:
    return UsageError("The upload was interrupted before it finished; nothing was stored.")


class PipeSource(io.RawIOBase):
    """The read end of an upload's pipe, as the binary file the core reads.

    End of file means end of upload only once all of it has arrived (``complete``); if the upload is
    abandoned or refused first, reading raises ``failure`` instead, so the core stores nothing.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.complete = False
        self.failure: CivicshareError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = os.readv(self._fd, [buffer])
        if n == 0 and not self.complete:
            raise self.failure or interrupted()
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def read_through(work: Callable[[BinaryIO], T], source: PipeSource) -> T:
    """Run ``work`` on the buffered pipe; closing the read end as soon as it stops reading turns the
    writer's next write into BrokenPipeError."""
    with source, io.BufferedReader(source, CHUNK) as reader:
        return work(reader)
