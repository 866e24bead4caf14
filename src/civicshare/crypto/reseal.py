"""Re-sealing an age stream to new recipients in helper processes, in constant memory.

Decrypting and encrypting run in separate processes, so they overlap on two cores (pyrage holds the
GIL throughout, so two threads could only take turns). The standard ``age`` command does both when it
is installed (it is several times faster than pyrage); otherwise two pyrage helpers do. The plaintext
only ever crosses anonymous pipes between the helpers (:mod:`civicshare.crypto.agepipe`): never this
process, never the disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from civicshare.crypto.agetool import PIPE_SIZE, Feeder, age_command, fileno, widen
from civicshare.crypto.atomicfile import write_all
from civicshare.crypto.datakeys import Readable, Writer, _identities, _recipients, _Sink
from civicshare.errors import IntegrityError, NotForUs, UsageError

_AGEPIPE = Path(__file__).with_name("agepipe.py")


def _status(status: str, code: int) -> tuple[int, str] | None:
    """The (size, sha256) of an ``ok SIZE SHA256`` status line from a helper that exited 0."""
    kind, _, rest = status.strip().partition(" ")
    if kind == "ok" and code == 0:
        size, _, digest = rest.partition(" ")
        if size.isdigit() and len(digest) == 64:
            return int(size), digest
    return None


def _pyrage_verdict(status: str, code: int) -> tuple[int, str]:
    """The plaintext's (size, sha256) from the decrypting helper's status line, or its failure."""
    measured = _status(status, code)
    if measured is not None:
        return measured
    kind, _, rest = status.strip().partition(" ")
    if kind == "not_for_us":
        raise _not_for_us()
    if kind == "integrity":
        raise _damaged()
    reason = rest or f"it ended with exit code {code}"
    raise UsageError(f"The stream could not be re-sealed: the decrypting process failed ({reason[:200]}).")


def _age_opened(stderr: str, code: int) -> None:
    """Raise what the decrypting age command's exit code and message say went wrong, if anything."""
    if code != 0:
        if "no identity matched" in stderr:
            raise _not_for_us()
        raise _damaged()


def _age_verdict(stderr: str, code: int, relay_status: str, relay_code: int) -> tuple[int, str]:
    """The same from the age command's exit code and message, and the relay's measurement."""
    _age_opened(stderr, code)
    measured = _status(relay_status, relay_code)
    if measured is None:
        raise UsageError(f"The stream could not be re-sealed: the plaintext relay failed "
                         f"({relay_status.strip()[:200] or f'exit code {relay_code}'}).")
    return measured


def _not_for_us() -> NotForUs:
    return NotForUs("This age ciphertext is not sealed to any key given to open it.")


def _damaged() -> IntegrityError:
    return IntegrityError("This age ciphertext could not be opened: it is damaged or was tampered with.")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _helper(*args: str, stdin: int, pass_fds: tuple[int, ...], stdout: int = subprocess.PIPE,
            ) -> subprocess.Popen[bytes]:
    # Our own interpreter and module, with descriptor numbers and public recipients as arguments.
    return subprocess.Popen([sys.executable, "-I", str(_AGEPIPE), *args],  # noqa: S603
                            stdin=stdin, stdout=stdout, stderr=None, close_fds=True, pass_fds=pass_fds)


def _tool(*args: str, stdin: int, pass_fds: tuple[int, ...] = (), stdout: int = subprocess.PIPE,
          ) -> subprocess.Popen[bytes]:
    # The age command: identities come through an inherited pipe (/dev/fd/N), never a file or argv.
    return subprocess.Popen(list(args), stdin=stdin, stdout=stdout,  # noqa: S603
                            stderr=subprocess.PIPE, close_fds=True, pass_fds=pass_fds)


def _read_status(fd: int) -> str:
    with os.fdopen(fd, "rb") as fh:
        return fh.read(4096).decode("ascii", "replace")


def reseal(src: Readable, identities: Sequence[str | bytes], recipients: Sequence[str], out: Writer | int,
           ) -> tuple[int, str]:
    """Decrypt the age stream ``src`` and encrypt its plaintext to ``recipients`` in one streaming pass;
    returns the plaintext's size and hex SHA-256. See :func:`_reseal`."""
    measured = _reseal(src, identities, recipients, out, measure=True)
    assert measured is not None
    return measured


def reseal_unmeasured(src: Readable, identities: Sequence[str | bytes], recipients: Sequence[str], out: int) -> None:
    """:func:`reseal` for a caller that already knows the plaintext's size and hash (a document's fixity
    value): with the age command, the plaintext goes straight from the decrypting process to the
    encrypting one, which writes the file ``out``, without the relay that would measure it."""
    _reseal(src, identities, recipients, out, measure=False)


def _reseal(src: Readable, identities: Sequence[str | bytes], recipients: Sequence[str], out: Writer | int, *,
            measure: bool) -> tuple[int, str] | None:
    """Decrypt the age stream ``src`` and encrypt its plaintext to ``recipients`` in one streaming pass;
    returns the plaintext's size and hex SHA-256 (None when not ``measure``-d: pyrage's helpers measure
    it anyway, the age command only through the relay).

    Helper processes do the work on several cores: one decrypts, one encrypts, the plaintext crossing
    anonymous pipes between them -- it never enters this process, nor the disk; memory stays constant.
    With the standard age command installed (:func:`age_command`) it does both, and a relay
    (:mod:`civicshare.crypto.agepipe`) between them measures the plaintext; otherwise two agepipe
    helpers do it with pyrage. The identities reach the decrypting helper through a pipe of their own.
    ``src`` is fed by a thread unless it is a plain file, which the helper then reads directly (from
    its current offset). The new ciphertext is handed to ``out`` as views of a buffer that is reused:
    ``out`` must copy what it keeps (writing or hashing it is fine). ``out`` may instead be the
    descriptor of a file, which the encrypting process then writes itself (no copy through this
    process). Raises like :func:`age_decrypt`; on any failure, output already written must be discarded.
    """
    keys, targets = _identities(identities), _recipients(recipients)
    tool = age_command()
    relayed = tool is not None and measure
    direct = fileno(src)
    opened: list[int] = []

    def pipe() -> tuple[int, int]:
        r, w = os.pipe()
        opened.extend((r, w))
        return r, w

    def close(fd: int) -> None:
        if fd in opened:
            opened.remove(fd)
            os.close(fd)

    def chain(proc: subprocess.Popen[bytes]) -> int:
        """The descriptor of ``proc``'s stdout, to be the next process's stdin (-1: it writes the file)."""
        procs.append(proc)
        if proc.stdout is None:
            return -1
        widen(proc.stdout.fileno())
        return proc.stdout.fileno()

    # The encrypting process writes the file itself when it is given one.
    last_out = out if isinstance(out, int) else subprocess.PIPE

    procs: list[subprocess.Popen[bytes]] = []
    feeder: Feeder | None = None
    finished = False
    status_fds: list[int] = []
    try:
        key_r, key_w = pipe()
        # A few hundred bytes: the pipe holds them all, so this never blocks.
        write_all(key_w, b"".join(str(k).encode("ascii") + b"\n" for k in keys))
        close(key_w)
        # The measuring process (the relay, or pyrage's decrypting helper) reports on its own pipe.
        status_r, status_w = pipe() if tool is None or relayed else (-1, -1)
        if status_r >= 0:
            status_fds.append(status_r)
        if direct is None:
            feed_r, feed_w = pipe()
            widen(feed_w)
        stdin = direct if direct is not None else feed_r
        if tool is not None:
            plain = chain(_tool(tool, "--decrypt", "-i", f"/dev/fd/{key_r}", stdin=stdin, pass_fds=(key_r,)))
            if relayed:
                plain = chain(_helper("relay", str(status_w), stdin=plain, pass_fds=(status_w,)))
            sealed_fd = chain(_tool(tool, "--encrypt", *(a for t in targets for a in ("-r", str(t))),
                                    stdin=plain, stdout=last_out))
        else:
            plain = chain(_helper("decrypt", str(key_r), str(status_w), stdin=stdin, pass_fds=(key_r, status_w)))
            enc_status_r, enc_status_w = pipe()
            status_fds.append(enc_status_r)
            sealed_fd = chain(_helper("encrypt", str(enc_status_w), *(str(t) for t in targets), stdin=plain,
                                      pass_fds=(enc_status_w,), stdout=last_out))
            close(enc_status_w)
        for fd in (key_r, status_w):
            close(fd)
        if direct is None:
            close(feed_r)
            opened.remove(feed_w)  # the feeder closes it
            feeder = Feeder(src, feed_w)
            feeder.thread.start()
        for proc in procs[:-1]:
            assert proc.stdout is not None
            proc.stdout.close()  # the plaintext pipes now join the helpers only
        if isinstance(out, int):
            procs[-1].wait()
        else:
            sink = _Sink(out)
            sealed = procs[-1].stdout
            assert sealed is not None and sealed.fileno() == sealed_fd
            # One buffer, reused: fresh reads of whatever size the pipe holds would fragment the heap.
            view = memoryview(bytearray(PIPE_SIZE))
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
        errors = [proc.stderr.read().decode("utf-8", "replace") if proc.stderr is not None else "" for proc in procs]
        for proc in procs:
            if proc.stderr is not None:
                proc.stderr.close()
        if feeder is not None:
            feeder.thread.join()
        statuses = [_read_status(fd) for fd in status_fds] if finished else []
        for fd in opened:
            if not finished or fd not in status_fds:
                os.close(fd)
    if feeder is not None and feeder.failure is not None:
        raise feeder.failure
    # A failed decryption ends the plaintext early, which looks like a short stream: never accept it.
    measured: tuple[int, str] | None
    if relayed:
        measured = _age_verdict(errors[0], codes[0], statuses[0], codes[1])
        failed, reason = codes[2] != 0, _first_line(errors[2]) or f"exit code {codes[2]}"
    elif tool is not None:
        _age_opened(errors[0], codes[0])
        measured = None
        failed, reason = codes[1] != 0, _first_line(errors[1]) or f"exit code {codes[1]}"
    else:
        measured = _pyrage_verdict(statuses[0], codes[0])
        kind, _, rest = statuses[1].strip().partition(" ")
        failed, reason = kind != "ok" or codes[1] != 0, rest[:200] or f"exit code {codes[1]}"
    if failed:
        raise UsageError(f"The stream could not be sealed: {reason}.")
    return measured
