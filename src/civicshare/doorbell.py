"""A doorbell between the processes of one node home: a new share wakes the delivery worker at once.

`civicshare share` runs in its own process and only records the transfer; `civicshare serve`
delivers it. Without a signal the worker would find it at its next look (every ``--deliver-every``
seconds). The doorbell is a named pipe (FIFO, mode 0600) at ``HOME/run/delivery.bell``: the share
rings it by writing a byte, and the worker, waiting on the pipe between its looks, wakes at once.

Ringing never blocks and never fails the share: with no ``serve`` listening, or the pipe full of
rings not yet heard, it does nothing, and the worker still looks on its schedule. Where the home's
filesystem has no named pipes, or something else sits at the path, the worker only polls.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("civicshare.doorbell")


def ring(path: Path) -> bool:
    """Wake whoever listens at ``path``; True if a listener was there. Never blocks, never raises."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # no listener (ENXIO), no bell yet (ENOENT), or not ours to ring
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        os.write(fd, b"\x01")
        return True
    except OSError as exc:
        # A full pipe already holds rings enough to wake the worker.
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    finally:
        os.close(fd)


class Listener:
    """The worker's end of the doorbell. :meth:`wait` sleeps until a ring or the timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._keep: int | None = None
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            log.warning("no doorbell; delivery looks for new transfers on its schedule only", path=str(path),
                        error=exc.strerror)
            return
        info = os.fstat(fd)
        if not stat.S_ISFIFO(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            log.warning("something other than this node's doorbell is at its path; delivery only polls",
                        path=str(path))
            return
        try:
            # Our own writer end stays open, so the pipe never reads as ended between rings.
            self._keep = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            os.close(fd)
            log.warning("no doorbell; delivery looks for new transfers on its schedule only", path=str(path),
                        error=exc.strerror)
            return
        self._fd = fd

    @property
    def listening(self) -> bool:
        return self._fd is not None

    def wait(self, timeout: float) -> bool:
        """Sleep until the bell rings or ``timeout`` seconds pass; True if it rang. Every ring waiting
        is taken at once, so a burst of shares wakes the worker once."""
        if self._fd is None:
            return False
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fd, 4096):
                pass
        return True

    def close(self) -> None:
        for fd in (self._fd, self._keep):
            if fd is not None:
                os.close(fd)
        self._fd = self._keep = None
