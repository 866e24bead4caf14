"""Re-sealing an age stream to new recipients in two helper processes, in constant memory.

pyrage holds the GIL for the whole of a decryption or an encryption, so two threads cannot overlap
the two; two processes can. The plaintext only ever crosses an anonymous pipe between the helpers
(:mod:`civicshare.crypto.agepipe`): never this process, never the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from civicshare.crypto.datakeys import Readable, Writer, _identities, _recipients, _Sink, _write_all
from civicshare.errors import IntegrityError, NotForUs, UsageError

_AGEPIPE = Path(__file__).with_name("agepipe.py")
_PIPE_SIZE = 1 << 20
_FEED = 1 << 16  # below glibc's mmap threshold: reused from the heap, never fragmenting it


def _widen(fd: int) -> None:
    # Larger pipe buffers mean fewer wake-ups between the two processes; the default still works.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _fileno(src: Readable) -> int | None:
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


class _Feeder:
    """A thread copying ``src`` into the decrypting process's stdin, recording ``src``'s own failures."""

    def __init__(self, src: Readable, fd: int) -> None:
        self._src = src
        self._fd = fd
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="civicshare-reseal-feed", daemon=True)

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = self._src.read(_FEED)
                except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                    self.failure = exc
                    return
                if not data:
                    return
                try:
                    _write_all(self._fd, data)
                except OSError:
                    # The decrypting process stopped reading (it is done, or failed): it reports why.
                    return
        finally:
            os.close(self._fd)


def _verdict(status: str, code: int) -> tuple[int, str]:
    """The plaintext's (size, sha256) from the decrypting process's status line, or its failure."""
    kind, _, rest = status.strip().partition(" ")
    if kind == "ok" and code == 0:
        size, _, digest = rest.partition(" ")
        if size.isdigit() and len(digest) == 64:
            return int(size), digest
    if kind == "not_for_us":
        return _raise(NotForUs("This age ciphertext is not sealed to any key given to open it."))
    if kind == "integrity":
        return _raise(IntegrityError("This age ciphertext could not be opened: it is damaged or was tampered with."))
    reason = rest or f"it ended with exit code {code}"
    raise UsageError(f"The stream could not be re-sealed: the decrypting process failed ({reason[:200]}).")


def _raise(exc: Exception) -> tuple[int, str]:
    raise exc


def _helper(*args: str, stdin: int, pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    # Our own interpreter and module, with descriptor numbers and public recipients as arguments.
    return subprocess.Popen([sys.executable, "-I", str(_AGEPIPE), *args],  # noqa: S603
                            stdin=stdin, stdout=subprocess.PIPE, stderr=None, close_fds=True, pass_fds=pass_fds)


def _read_status(fd: int) -> str:
    with os.fdopen(fd, "rb") as fh:
        return fh.read(4096).decode("ascii", "replace")


def reseal(src: Readable, identities: Sequence[str | bytes], recipients: Sequence[str], out: Writer) -> tuple[int, str]:
    """Decrypt the age stream ``src`` and encrypt its plaintext to ``recipients`` in one streaming pass;
    returns the plaintext's size and hex SHA-256.

    Two helper processes (:mod:`civicshare.crypto.agepipe`) do the work on two cores: one decrypts,
    the other encrypts, the plaintext crossing an anonymous pipe between them -- it never enters this
    process, nor the disk; memory stays constant. The identities reach the decrypting helper through
    a pipe of their own. ``src`` is fed by a thread unless it is a plain file, which the helper then
    reads directly (from its current offset). The new ciphertext is handed to ``out`` as views of a
    buffer that is reused: ``out`` must copy what it keeps (writing or hashing it is fine). Raises like
    :func:`age_decrypt`; on any failure, output already handed to ``out`` must be discarded.
    """
    keys, targets = _identities(identities), _recipients(recipients)
    direct = _fileno(src)
    opened: list[int] = []

    def pipe() -> tuple[int, int]:
        r, w = os.pipe()
        opened.extend((r, w))
        return r, w

    def close(fd: int) -> None:
        if fd in opened:
            opened.remove(fd)
            os.close(fd)

    procs: list[subprocess.Popen[bytes]] = []
    feeder: _Feeder | None = None
    finished = False
    try:
        key_r, key_w = pipe()
        # A few hundred bytes: the pipe holds them all, so this never blocks.
        _write_all(key_w, b"".join(str(k).encode("ascii") + b"\n" for k in keys))
        close(key_w)
        dec_status_r, dec_status_w = pipe()
        enc_status_r, enc_status_w = pipe()
        if direct is None:
            feed_r, feed_w = pipe()
            _widen(feed_w)
        decrypting = _helper("decrypt", str(key_r), str(dec_status_w), stdin=direct if direct is not None else feed_r,
                             pass_fds=(key_r, dec_status_w))
        procs.append(decrypting)
        for fd in (key_r, dec_status_w) + (() if direct is not None else (feed_r,)):
            close(fd)
        assert decrypting.stdout is not None
        _widen(decrypting.stdout.fileno())
        encrypting = _helper("encrypt", str(enc_status_w), *(str(t) for t in targets),
                             stdin=decrypting.stdout.fileno(), pass_fds=(enc_status_w,))
        procs.append(encrypting)
        decrypting.stdout.close()  # the plaintext pipe now joins the two helpers only
        close(enc_status_w)
        assert encrypting.stdout is not None
        _widen(encrypting.stdout.fileno())
        if direct is None:
            opened.remove(feed_w)  # the feeder closes it
            feeder = _Feeder(src, feed_w)
            feeder.thread.start()
        sink = _Sink(out)
        sealed = encrypting.stdout
        # One buffer, reused: fresh reads of whatever size the pipe holds would fragment the heap.
        view = memoryview(bytearray(_PIPE_SIZE))
        try:
            while count := sealed.readinto1(view):  # type: ignore[attr-defined]
                sink.write(view[:count])  # type: ignore[arg-type]  # a view, see the docstring
        except BaseException:
            if sink.failure is not None:
                raise sink.failure from None
            raise
        finished = True
    finally:
        for proc in procs:
            if not finished:
                # Sealing stopped early: a helper may be blocked on a full pipe, so it is ended, not awaited.
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()
        codes = [proc.wait() for proc in procs]
        if feeder is not None:
            feeder.thread.join()
        statuses = [_read_status(fd) for fd in (dec_status_r, enc_status_r)] if finished else []
        for fd in opened:
            if not finished or fd not in (dec_status_r, enc_status_r):
                os.close(fd)
    if feeder is not None and feeder.failure is not None:
        raise feeder.failure
    # A failed decryption ends the plaintext early, which looks like a short stream: never accept it.
    size, digest = _verdict(statuses[0], codes[0])
    kind, _, rest = statuses[1].strip().partition(" ")
    if kind != "ok" or codes[1] != 0:
        raise UsageError(f"The stream could not be sealed: {rest[:200] or f'exit code {codes[1]}'}.")
    return size, digest
