"""A helper process that decrypts an age stream from stdin to stdout, so re-sealing runs on two cores.

pyrage holds the GIL for the whole of a decryption or encryption, even while it waits on I/O, so two
threads of one process can only take turns. :func:`civicshare.crypto.datakeys.reseal` therefore
decrypts in one process like this and encrypts in another, the plaintext crossing an anonymous pipe
between the two (never the disk).

Run by path, so nothing but pyrage is imported:

* ``python -I agepipe.py decrypt KEY_FD STATUS_FD``: the age identities (one per line) are read from
  the inherited pipe ``KEY_FD`` until its end -- never from argv, the environment or a file;
* ``python -I agepipe.py encrypt STATUS_FD RECIPIENT...``: stdin is encrypted to the (public)
  recipients;
* ``python -I agepipe.py relay STATUS_FD``: stdin is copied to stdout unchanged, counted and hashed.
  When the standard ``age`` command does the decrypting and encrypting (much faster than pyrage),
  this sits on the plaintext pipe between the two, so the plaintext is measured without entering
  the calling process.

When done, one line goes to the inherited pipe ``STATUS_FD``: ``ok SIZE SHA256`` (decrypt and relay:
the plaintext's size and hex SHA-256) or ``ok SIZE`` (encrypt: the ciphertext's size), or
``not_for_us``, ``integrity`` or ``error`` followed by a reason; the exit code is 0 only with ``ok``.

The re-sealing pipeline is two of these, the decrypting one's stdout being the encrypting one's
stdin: the plaintext never enters the calling process at all, and pyrage's GIL-holding work never
slows the calling process (a server) down.

This module imports nothing from civicshare: it must start fast and stand alone.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import BinaryIO

BUFFER = 1 << 20
OK, NOT_FOR_US, INTEGRITY, ERROR = "ok", "not_for_us", "integrity", "error"
EXIT_CODES = {OK: 0, NOT_FOR_US: 3, INTEGRITY: 4, ERROR: 5}


class _Failure(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _Reader:
    """stdin for age, remembering whether reading failed (so it is not reported as damage)."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.failure: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            return self._src.read(n)
        except BaseException as exc:
            self.failure = exc
            raise


class _Writer:
    """stdout for age: hashes the plaintext and remembers whether writing failed."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._out.write(data)
        except BaseException as exc:
            self.failure = exc
            raise
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def _read_identities(key_fd: int) -> list[object]:
    import pyrage

    chunks = []
    while chunk := os.read(key_fd, 4096):
        chunks.append(chunk)
    os.close(key_fd)
    lines = [line.strip() for line in b"".join(chunks).decode("ascii").splitlines() if line.strip()]
    if not lines:
        raise _Failure(ERROR, "no age identity was given")
    try:
        return [pyrage.x25519.Identity.from_str(line) for line in lines]
    except Exception:  # noqa: BLE001 - pyrage raises its own errors; any failure means unusable
        raise _Failure(ERROR, "an age identity given is not usable") from None


def decrypt(key_fd: int) -> str:
    """Decrypt stdin to stdout; returns the status line (``ok SIZE SHA256``) or raises _Failure."""
    import pyrage

    identities = _read_identities(key_fd)
    source = open(0, "rb", buffering=BUFFER, closefd=False)  # noqa: SIM115 - closed by the process exit
    target = open(1, "wb", buffering=BUFFER, closefd=False)  # noqa: SIM115
    reader, writer = _Reader(source), _Writer(target)
    try:
        pyrage.decrypt_io(reader, writer, identities)
        target.flush()
    except Exception as exc:  # noqa: BLE001 - sorted into the three outcomes below
        if reader.failure is not None or writer.failure is not None:
            raise _Failure(ERROR, f"the pipe failed: {reader.failure or writer.failure}") from None
        if "no matching keys" in str(exc).lower():
            raise _Failure(NOT_FOR_US, "no identity given opens this age stream") from None
        raise _Failure(INTEGRITY, "the age stream is damaged or was tampered with") from None
    return f"{OK} {writer.size} {writer.hash.hexdigest()}"


def encrypt(recipients: list[str]) -> str:
    """Encrypt stdin to stdout for ``recipients``; returns the status line (``ok SIZE``) or raises _Failure."""
    import pyrage

    try:
        targets = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception:  # noqa: BLE001 - pyrage raises its own errors; any failure means unusable
        raise _Failure(ERROR, "an age recipient given is not usable") from None
    source = open(0, "rb", buffering=BUFFER, closefd=False)  # noqa: SIM115 - closed by the process exit
    target = open(1, "wb", buffering=BUFFER, closefd=False)  # noqa: SIM115
    reader, writer = _Reader(source), _Writer(target)
    try:
        pyrage.encrypt_io(reader, writer, targets)
        target.flush()
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise _Failure(ERROR, f"sealing failed: {reader.failure or writer.failure or exc}") from None
    return f"{OK} {writer.size}"


def relay() -> str:
    """Copy stdin to stdout, hashing it; returns the status line (``ok SIZE SHA256``) or raises _Failure."""
    digest, size = hashlib.sha256(), 0
    view = memoryview(bytearray(BUFFER))
    source = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 - closed by the process exit
    try:
        while count := source.readinto(view):
            chunk = view[:count]
            digest.update(chunk)
            while chunk:
                chunk = chunk[os.write(1, chunk):]
            size += count
    except OSError as exc:
        raise _Failure(ERROR, f"the pipe failed: {exc}") from None
    return f"{OK} {size} {digest.hexdigest()}"


USAGE = ("usage: agepipe.py decrypt KEY_FD STATUS_FD | agepipe.py encrypt STATUS_FD RECIPIENT... | "
         "agepipe.py relay STATUS_FD\n")


def main(argv: list[str]) -> int:
    decrypting = len(argv) == 4 and argv[1] == "decrypt" and argv[2].isdigit() and argv[3].isdigit()
    encrypting = len(argv) >= 4 and argv[1] == "encrypt" and argv[2].isdigit()
    relaying = len(argv) == 3 and argv[1] == "relay" and argv[2].isdigit()
    if not (decrypting or encrypting or relaying):
        sys.stderr.write(USAGE)
        return EXIT_CODES[ERROR]
    status_fd = int(argv[3] if decrypting else argv[2])
    try:
        if decrypting:
            line = decrypt(int(argv[2]))
        else:
            line = encrypt(argv[3:]) if encrypting else relay()
        kind = OK
    except _Failure as failure:
        kind, line = failure.kind, f"{failure.kind} {failure.reason}"
    except Exception as exc:  # noqa: BLE001 - reported as one line; the parent discards everything
        kind, line = ERROR, f"{ERROR} {type(exc).__name__}"
    # Our end of stdout closes first, so the parent sees the plaintext end before the verdict.
    os.close(1)
    os.write(status_fd, (line + "\n").encode("ascii", "replace"))
    os.close(status_fd)
    return EXIT_CODES[kind]


if __name__ == "__main__":
    # No interpreter teardown: stdout is already closed, and nothing is left to flush.
    os._exit(main(sys.argv))
