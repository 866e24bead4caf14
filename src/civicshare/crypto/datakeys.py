"""Per-holding data keys, and sealing documents at rest with age.

Every holding has its own data key, wrapped by the organisation's KEK (``Keystore.wrap``) and stored
beside the holding; destroying the wrapped key shreds the holding.

* A dataset's key is 32 random bytes: the AES-256 key for encrypted Parquet (``new_table_key``).
* A document's key is an age X25519 identity, as ASCII bytes (``new_document_key``). The document
  is age v1 encrypted to that identity's recipient, so with the identity exported, the standard
  ``age`` tool opens it.

Sealing and opening stream in constant memory. Output first goes to ``<dest>.partial`` and is
moved into place only on success; on any failure the partial file is removed. That matters most for
opening: age authenticates chunk by chunk, so when a later chunk turns out to be damaged, earlier
plaintext has already been written -- it must never be left behind looking like a complete file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import pyrage

from civicshare.crypto.agetool import age_command, run_age
from civicshare.crypto.atomicfile import fsync_dir, fsync_file, open_private, synced_as_written, write_all
from civicshare.crypto.directwrite import DirectWriter
from civicshare.crypto.randomness import Rng, random_bytes
from civicshare.errors import Conflict, IntegrityError, NotForUs, NotFound, UsageError

TABLE_KEY_BYTES = 32
FINGERPRINT_HEX_CHARS = 32  # 128 bits of SHA-256


def new_table_key(rng: Rng = os.urandom) -> bytes:
    """A fresh AES-256 key for one encrypted Parquet holding."""
    return random_bytes(rng, TABLE_KEY_BYTES)


def new_document_key() -> bytes:
    """A fresh age identity (``AGE-SECRET-KEY-1...``) as ASCII bytes, for one document."""
    return str(pyrage.x25519.Identity.generate()).encode("ascii")


def _identity(document_key: bytes) -> pyrage.x25519.Identity:
    if not isinstance(document_key, bytes):
        raise UsageError("A document key must be bytes.")
    try:
        return pyrage.x25519.Identity.from_str(document_key.decode("ascii"))
    except (UnicodeDecodeError, pyrage.IdentityError):
        raise UsageError("This is not a document key (an age X25519 identity).") from None


def document_recipient(document_key: bytes) -> str:
    """The age recipient (``age1...``) a document key opens."""
    return str(_identity(document_key).to_public())


def fingerprint(public: bytes) -> str:
    """A short, stable name for a public key (first 128 bits of SHA-256, hex) for the key register."""
    if not isinstance(public, bytes):
        raise UsageError("A fingerprint is taken of the public key's bytes.")
    return hashlib.sha256(public).hexdigest()[:FINGERPRINT_HEX_CHARS]


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _CountingReader:
    """Feeds age from the caller's stream, counting bytes and recording the stream's own failures."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self.count = 0
        self.failure: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._src.read(n)
        except BaseException as exc:
            self.failure = exc
            raise
        self.count += len(data)
        return data


class _Sink:
    """Takes age's output, recording the destination's own failures (so a full disk is not reported
    as a tampered document)."""

    def __init__(self, write: Callable[[bytes], object], fd: int | None = None, path: Path | None = None) -> None:
        self._write = write
        self.failure: BaseException | None = None
        # The file written, when there is one: a helper process may write to it directly, and the
        # caller may read back what was written so far through its path.
        self.fd = fd
        self.path = path

    def write(self, data: bytes) -> int:
        try:
            self._write(data)
        except BaseException as exc:
            self.failure = exc
            raise
        return len(data)


def _produce_direct(fd: int, partial: Path, produce: Callable[[_Sink], None]) -> None:
    writer = DirectWriter(fd)
    try:
        # No descriptor for a helper process: its unaligned writes would fail under direct I/O.
        produce(_Sink(writer.write, None, partial))
        writer.finish()
    finally:
        writer.close()


def _partial(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


def _write_via_partial(dest: Path, overwrite: bool, produce: Callable[[_Sink], None], durable: bool = True,
                       direct: bool = False) -> None:
    """Run ``produce(writer)`` into ``dest.partial`` (0600), then move it to ``dest``; clean up on failure.

    Not ``durable``: the file is moved into place without waiting for the disk (see ``write_new_file``).
    ``direct``: written around the page cache (see :mod:`civicshare.crypto.directwrite`).
    """
    if not overwrite and dest.exists():
        raise Conflict(f"{dest} already exists; it was not overwritten.")
    partial = _partial(dest)
    fd = open_private(partial)
    try:
        try:
            if direct:
                # Direct writes reach the disk as they are made: no writeback to push along.
                _produce_direct(fd, partial, produce)
                os.fsync(fd)
            elif durable:
                with synced_as_written(fd):
                    produce(_Sink(functools.partial(write_all, fd), fd, partial))
                os.fsync(fd)
            else:
                produce(_Sink(functools.partial(write_all, fd), fd, partial))
        finally:
            os.close(fd)
        if overwrite:
            os.replace(partial, dest)
        else:
            try:
                os.link(partial, dest)
            except FileExistsError:
                raise Conflict(f"{dest} already exists; it was not overwritten.") from None
            os.unlink(partial)
        fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


class _HashingReader(_CountingReader):
    """A counting reader that also hashes exactly the bytes it hands on."""

    def __init__(self, src: Readable) -> None:
        super().__init__(src)
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        self.hash.update(data)
        return data


def seal_stream(src: BinaryIO, dest: Path, document_key: bytes, *, overwrite: bool = False) -> tuple[int, str]:
    """Age-encrypt ``src`` to ``dest`` for ``document_key``; returns the size and hex SHA-256 of the
    plaintext read (the document's fixity value: exactly the bytes sealed).

    ``dest`` is written only once the whole stream is sealed; an existing ``dest`` raises Conflict
    unless ``overwrite``.
    """
    dest = Path(dest)
    recipient = _identity(document_key).to_public()
    # The age command too is fed through this reader (never the file directly), so what is hashed is
    # what was sealed even if the file changes meanwhile.
    reader = _HashingReader(src)
    tool = age_command()

    def produce(writer: _Sink) -> None:
        if tool is not None:
            code, said, _fed = run_age([tool, "--encrypt", "-r", str(recipient)], reader, writer.write)
            if code != 0:
                raise UsageError(f"The document could not be sealed: {said or f'age exited with {code}'}")
            return
        try:
            pyrage.encrypt_io(reader, writer, [recipient])
        except Exception as exc:
            failure = reader.failure or writer.failure
            if failure is not None:
                raise failure from None
            raise UsageError(f"The document could not be sealed: {exc}") from exc

    _write_via_partial(dest, overwrite, produce)
    return reader.count, reader.hash.hexdigest()


def _decrypt(src: Path, document_key: bytes, writer: _Sink) -> None:
    identity = _identity(document_key)
    try:
        f = open(src, "rb")
    except FileNotFoundError:
        raise NotFound(f"There is no sealed document at {src}.") from None
    damaged = IntegrityError(f"The sealed document {src} could not be opened: wrong key, or damaged or tampered "
                             "with.")
    tool = age_command()
    with f:
        if tool is not None:
            # The writer may keep what it is given, so it gets copies of the reused buffer's views.
            code, _said, _fed = run_age([tool, "--decrypt", "-i", "{secret}"], f,
                                        lambda view: writer.write(bytes(view)),
                                        secret=str(identity).encode("ascii") + b"\n")
            if code != 0:
                raise damaged
            return
        reader = _CountingReader(f)
        try:
            pyrage.decrypt_io(reader, writer, [identity])
        except Exception:
            failure = reader.failure or writer.failure
            if failure is not None:
                raise failure from None
            raise damaged from None


def open_sealed(src: Path, document_key: bytes, out: BinaryIO) -> None:
    """Decrypt the sealed document ``src`` into ``out``; IntegrityError if it does not check out.

    On IntegrityError, ``out`` may already hold some of the plaintext: discard it. To decrypt to a
    file, use ``open_sealed_to_file``, which does that for you.
    """
    _decrypt(Path(src), document_key, _Sink(out.write))


def open_sealed_to_file(src: Path, document_key: bytes, out_path: Path, *, overwrite: bool = False) -> None:
    """Decrypt ``src`` to ``out_path`` (mode 0600), which appears only if the whole document checks out."""
    src, out_path = Path(src), Path(out_path)
    _identity(document_key)  # a malformed key is refused before any file is created
    if not src.is_file():
        raise NotFound(f"There is no sealed document at {src}.")

    def produce(writer: _Sink) -> None:
        _decrypt(src, document_key, writer)

    _write_via_partial(out_path, overwrite, produce)


# Streaming between age recipients (the exchange's payloads) ---------------------------------------

Writer = Callable[[bytes], object]
Sink = _Sink


def write_new_file(dest: Path, produce: Callable[[_Sink], None], *, overwrite: bool = False,
                   durable: bool = True, direct: bool = False) -> None:
    """Run ``produce(writer)`` into ``dest.partial`` (0600), then move it to ``dest``.

    On any failure the partial file is removed and ``dest`` never appears; an existing ``dest``
    raises Conflict unless ``overwrite``. ``durable=False`` leaves forcing it to the disk to the
    caller (:func:`make_durable`), who may start using it meanwhile. ``direct`` writes it around the
    page cache (for a large file written once; ``produce`` then gets no descriptor to hand on).
    """
    _write_via_partial(Path(dest), overwrite, produce, durable, direct)


def make_durable(path: Path) -> None:
    """Force a file written with ``durable=False`` to the disk, with its directory entry."""
    fsync_file(path)
    fsync_dir(path.parent)


def discard_leftovers(dest: Path) -> None:
    """Remove ``dest`` and its partial file: what a writer killed before it was recorded left there."""
    for path in (dest, _partial(dest)):
        path.unlink(missing_ok=True)


def decrypt_stream(src: Readable, document_key: bytes, out: Writer) -> None:
    """Decrypt the age stream ``src`` with a document key, handing the plaintext to ``out`` (views of a
    reused buffer: copy what is kept). The age command does it where it is installed.

    NotForUs when the key does not open its header; IntegrityError when it is damaged or truncated.
    Plaintext handed to ``out`` before a failure must be discarded.
    """
    identity = _identity(document_key)
    tool = age_command()
    if tool is None:
        age_decrypt(src, [document_key], out)
        return
    code, said, _fed = run_age([tool, "--decrypt", "-i", "{secret}"], src, out,
                               secret=str(identity).encode("ascii") + b"\n")
    if code != 0:
        if "no identity matched" in said.lower():
            raise NotForUs("This age ciphertext is not sealed to any key given to open it.")
        raise IntegrityError("This age ciphertext could not be opened: it is damaged or was tampered with.")


def _recipients(recipients: Sequence[str]) -> list[pyrage.x25519.Recipient]:
    try:
        return [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception:  # noqa: BLE001 - pyrage raises its own and ValueError; any failure means unusable
        raise UsageError("This is not an age X25519 recipient (age1...).") from None


def _identities(identities: Sequence[str | bytes]) -> list[pyrage.x25519.Identity]:
    return [_identity(i.encode("ascii") if isinstance(i, str) else i) for i in identities]


def _opening_failure(exc: BaseException) -> Exception:
    # age reports a header no identity can open as "No matching keys"; anything later is damage.
    if "no matching keys" in str(exc).lower():
        return NotForUs("This age ciphertext is not sealed to any key given to open it.")
    return IntegrityError("This age ciphertext could not be opened: it is damaged or was tampered with.")


def age_encrypt(src: Readable, recipients: Sequence[str], out: Writer) -> int:
    """Age-encrypt the stream ``src`` to ``recipients``, handing the ciphertext to ``out``; returns the
    plaintext bytes read. Constant memory."""
    reader, sink = _CountingReader(src), _Sink(out)
    try:
        pyrage.encrypt_io(reader, sink, _recipients(recipients))
    except Exception as exc:
        failure = reader.failure or sink.failure
        if failure is not None:
            raise failure from None
        raise UsageError(f"The stream could not be sealed: {exc}") from exc
    return reader.count


def age_decrypt(src: Readable, identities: Sequence[str | bytes], out: Writer) -> None:
    """Decrypt the age stream ``src`` with ``identities`` into ``out``. Constant memory.

    NotForUs when no identity opens its header (or the header is damaged); IntegrityError when the
    body is damaged or truncated. Plaintext handed to ``out`` before a failure must be discarded.
    """
    keys = _identities(identities)
    reader, sink = _CountingReader(src), _Sink(out)
    try:
        pyrage.decrypt_io(reader, sink, keys)
    except Exception as exc:
        failure = reader.failure or sink.failure
        if failure is not None:
            raise failure from None
        raise _opening_failure(exc) from None
