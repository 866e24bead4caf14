"""Running the standard ``age`` command on a stream: several times faster than pyrage, and off our GIL.

pyrage (the age library in this process) opens and seals at a few hundred MB/s and holds the GIL
while it works, so a server doing it for one large document answers nobody else meanwhile. The age
command (the Go reference implementation, Debian's package ``age``) runs in its own process at about
1 GB/s. civicshare uses it when it is installed and pyrage otherwise; both read and write age v1, so
either opens what the other sealed.

Identities reach the command through an inherited pipe named as ``/dev/fd/N``: never argv, the
environment or a file. Public recipients go on its command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from civicshare.crypto.atomicfile import write_all

PIPE_SIZE = 1 << 20
FEED = 1 << 16  # below glibc's mmap threshold: reused from the heap, never fragmenting it


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def age_command() -> str | None:
    """The age command to use, or None to use pyrage.

    ``CIVICSHARE_AGE`` names it, or ``builtin`` chooses pyrage; left unset, ``age`` on the PATH is
    used if there is one. A named command that is not a program is refused (UsageError).
    """
    from civicshare.errors import UsageError

    chosen = os.environ.get("CIVICSHARE_AGE", "").strip()
    if chosen == "builtin":
        return None
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise UsageError(f"CIVICSHARE_AGE names {chosen}, which is not a program; install age or set "
                             "CIVICSHARE_AGE=builtin.")
        return chosen
    return shutil.which("age")


def widen(fd: int) -> None:
    # Larger pipe buffers mean fewer wake-ups between processes; the default still works.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def fileno(src: Readable) -> int | None:
    """The descriptor of a plain file ``src`` reads from (at its current offset), if it is one."""
    if type(src) not in (io.BufferedReader, io.FileIO):
        return None
    try:
        fd = src.fileno()  # type: ignore[attr-defined]
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        position = src.tell()  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return None
    os.lseek(fd, position, os.SEEK_SET)  # the buffered reader may have read ahead
    return fd


def pieces_of(src: Readable, buffer: memoryview) -> Iterator[bytes | memoryview]:
    """What is left of ``src``, as pieces each to be used up before the next is asked for.

    A source with ``pieces(buffer)`` gives its own (its memory, or ``buffer``); one that can
    ``readinto`` fills ``buffer``, reused: no allocation per piece; any other is read FEED bytes at
    a time.
    """
    own = getattr(src, "pieces", None)
    if own is not None:
        yield from own(buffer)
        return
    readinto = getattr(src, "readinto", None)
    if readinto is None:
        while data := src.read(FEED):
            yield data
        return
    while count := readinto(buffer):
        yield buffer[:count]


class Feeder:
    """A thread copying ``src`` into a helper process's stdin, counting bytes and recording ``src``'s own failures.

    ``src`` is read by :func:`pieces_of` through one buffer of PIPE_SIZE: a sixteenth of the round
    trips of FEED-sized reads, and no copy at all of the pieces a source hands out of its own memory.
    """

    def __init__(self, src: Readable, fd: int) -> None:
        self._src = src
        self._fd = fd
        self.count = 0
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="civicshare-age-feed", daemon=True)

    def _pieces(self) -> Iterator[bytes | memoryview]:
        return pieces_of(self._src, memoryview(bytearray(PIPE_SIZE)))

    def _run(self) -> None:
        try:
            pieces = self._pieces()
            while True:
                try:
                    data = next(pieces, None)
                except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                    self.failure = exc
                    return
                if data is None:
                    return
                try:
                    write_all(self._fd, data)
                except OSError:
                    # The helper stopped reading (it is done, or failed): it reports why.
                    return
                self.count += len(data)
        finally:
            os.close(self._fd)


def run_age(args: Sequence[str], src: Readable, out: Callable[[bytes], object], *,
            secret: bytes | None = None) -> tuple[int, str, int]:
    """Run the age command ``args`` with ``src`` as its input, handing its output to ``out``.

    ``secret`` (identities, one per line) is passed through a pipe that ``args`` names as the
    placeholder ``{secret}`` (replaced by ``/dev/fd/N``). ``out`` receives views of a buffer that is
    reused: it must copy what it keeps. Returns the exit code, the first line of what the command
    said on stderr, and how many bytes of ``src`` were read. A failure of ``src`` or ``out`` is
    raised as itself after the command has been ended and reaped; nothing is left running.
    """
    direct = fileno(src)
    opened: list[int] = []
    proc: subprocess.Popen[bytes] | None = None
    feeder: Feeder | None = None
    finished = False
    out_failure: BaseException | None = None
    try:
        pass_fds: tuple[int, ...] = ()
        argv = list(args)
        if secret is not None:
            key_r, key_w = os.pipe()
            opened.extend((key_r, key_w))
            write_all(key_w, secret)  # a few hundred bytes: the pipe holds them, so this never blocks
            os.close(key_w)
            opened.remove(key_w)
            argv = [a.replace("{secret}", f"/dev/fd/{key_r}") for a in argv]
            pass_fds = (key_r,)
        if direct is None:
            feed_r, feed_w = os.pipe()
            opened.extend((feed_r, feed_w))
            widen(feed_w)
        start = os.lseek(direct, 0, os.SEEK_CUR) if direct is not None else 0
        proc = subprocess.Popen(argv, stdin=direct if direct is not None else feed_r,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True, pass_fds=pass_fds)
        for fd in list(opened):
            if fd != (feed_w if direct is None else -1):
                os.close(fd)
                opened.remove(fd)
        if direct is None:
            opened.remove(feed_w)  # the feeder closes it
            feeder = Feeder(src, feed_w)
            feeder.thread.start()
        assert proc.stdout is not None
        widen(proc.stdout.fileno())
        view = memoryview(bytearray(PIPE_SIZE))
        while count := proc.stdout.readinto1(view):  # type: ignore[attr-defined]
            try:
                out(view[:count])  # type: ignore[arg-type]  # a view: see the docstring
            except BaseException as exc:  # noqa: BLE001 - raised as itself below, once the command is ended
                out_failure = exc
                break
        finished = out_failure is None
    finally:
        for fd in opened:
            os.close(fd)
        code, said = -1, ""
        if proc is not None:
            if not finished:
                proc.kill()  # it may be blocked on a full pipe: ended, not awaited
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            code = proc.wait()
            said = proc.stderr.read(4096).decode("utf-8", "replace")
            proc.stderr.close()
        if feeder is not None:
            feeder.thread.join()
    if feeder is not None and feeder.failure is not None:
        raise feeder.failure
    if out_failure is not None:
        raise out_failure
    fed = feeder.count if feeder is not None else os.fstat(direct).st_size - start  # type: ignore[arg-type]
    first = said.strip().splitlines()[0][:200] if said.strip() else ""
    return code, first, fed
