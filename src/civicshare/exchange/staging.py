"""The staging area of arriving transfers: their parts (ciphertext only) until they are opened.

Each transfer has a folder ``staging/ORG/TRANSFER`` of ``part-N`` files, each written whole or not at
all, and a lock file beside it so only one commit of a transfer runs at a time, across the threads
and processes sharing the home. Nothing here is ever plaintext.

Parts are not forced to the disk (no fsync): they are a transient copy of what the sender keeps
until it holds a verified receipt. A killed process loses nothing (the kernel still has the
bytes); a part a power cut shortens counts as missing (its length is checked) and one it damages
fails its hash check when it is read back, which drops the parts for the sender to send again.
What must survive a power cut -- the new holding, then the receipt -- is synced before the receipt
is signed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import io
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from civicshare.clock import Rng, new_id
from civicshare.config import Layout
from civicshare.crypto.agetool import pieces_of
from civicshare.errors import IntegrityError, Problem
from civicshare.exchange.handoff import Handoff

CHUNK = 1 << 20
WAIT_INTERVAL = 0.01


class PartsLate(Exception):
    """A part a reader was waiting for did not arrive within its patience (nothing is wrong with it)."""


class StagedPartDamaged(IntegrityError):
    """A staged part read back from the disk is not the part that was checked when it arrived."""


class _CheckedPart(io.RawIOBase):
    """A staged part read back from the disk, hashed as it is read and checked against the manifest's
    hash for it at its end (parts are not forced to the disk, so a power cut may have damaged one)."""

    def __init__(self, path: Path, n: int, sha256: str) -> None:
        super().__init__()
        self._file = path.open("rb", buffering=0)
        self._n = n
        self._expected = sha256
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer) or 0
        if count:
            self._hash.update(memoryview(buffer)[:count])
        elif not hmac.compare_digest(self._hash.hexdigest(), self._expected):
            raise StagedPartDamaged(
                f"Staged part {self._n} is not the part that arrived: it was damaged on the disk.",
                problems=[Problem("does not match the manifest", field=f"parts.sha256[{self._n}]")])
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


class _InMemory:
    """A part handed over in memory: read like a file, or given whole by :meth:`pieces`."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._at = 0

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self._view) - self._at)
        memoryview(buffer)[:count] = self._view[self._at:self._at + count]
        self._at += count
        return count

    def pieces(self, buffer: memoryview) -> Iterator[memoryview]:
        """What is left unread, as one view of the part's own bytes (nothing is copied)."""
        view, self._at = self._view[self._at:], len(self._view)
        if view:
            yield view

    def close(self) -> None:
        self._at = len(self._view)


class _PartsReader(io.RawIOBase):
    """The staged parts of a transfer, in order, read as one stream (never all in memory).

    With ``patience``, a part not staged yet is waited for (up to that many seconds each), so a
    transfer can be opened while its parts are still arriving; with a ``handoff`` too, a part handed
    over in memory by the request that brought it is read from there instead of the disk. With
    ``hashes`` (the manifest's hash of each part), a part read back from the disk is checked against
    its hash (StagedPartDamaged); a part handed over in memory never left it since it was checked.
    """

    def __init__(self, paths: list[Path], patience: float | None = None, handoff: Handoff | None = None,
                 hashes: Sequence[str] | None = None) -> None:
        super().__init__()
        self._paths = iter(enumerate(paths))
        self._current: BinaryIO | None = None
        self._patience = patience
        self._handoff = handoff
        self._hashes = hashes

    def _open(self, n: int, path: Path) -> BinaryIO:
        if self._hashes is None:
            return path.open("rb")
        return _CheckedPart(path, n, self._hashes[n])  # type: ignore[return-value]

    def readable(self) -> bool:
        return True

    def _next_part(self) -> BinaryIO | None:
        item = next(self._paths, None)
        if item is None:
            return None
        n, path = item
        if self._patience is None:
            return self._open(n, path)
        deadline = time.monotonic() + self._patience
        while True:
            # Waiting on the handoff also paces the loop; without one, a short sleep does.
            data = self._handoff.take(n, WAIT_INTERVAL) if self._handoff is not None else None
            if data is not None:
                return _InMemory(data)  # type: ignore[return-value]
            if path.exists():  # a staged part appears whole (linked into place once written)
                return self._open(n, path)
            if time.monotonic() > deadline:
                raise PartsLate(f"{path.name} did not arrive within {self._patience:g} seconds.")
            if self._handoff is None:
                time.sleep(WAIT_INTERVAL)

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._current is None:
                self._current = self._next_part()
                if self._current is None:
                    return 0
            n = self._current.readinto(buffer)  # type: ignore[attr-defined]
            if n:
                return n
            self._current.close()
            self._current = None

    def pieces(self, buffer: memoryview) -> Iterator[bytes | memoryview]:
        """The rest of the stream as a series of views, for a reader that writes each one on: a part
        handed over in memory comes whole, as it is (not copied); one read from the disk comes through
        ``buffer``, which is reused, so each view must be used up before the next is asked for."""
        while True:
            if self._current is None:
                self._current = self._next_part()
                if self._current is None:
                    return
            yield from pieces_of(self._current, buffer)
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


class Staging:
    def __init__(self, layout: Layout, rng: Rng) -> None:
        self.layout = layout
        self.rng = rng

    def folder(self, org_id: str, transfer: str) -> Path:
        return self.layout.staging_dir(org_id) / transfer

    def has_part(self, org_id: str, transfer: str, n: int, length: int) -> bool:
        """Whether part ``n`` is staged whole (its file is ``length`` bytes long)."""
        try:
            return (self.folder(org_id, transfer) / f"part-{n}").stat().st_size == length
        except FileNotFoundError:
            return False

    def parts_present(self, org_id: str, transfer: str, lengths: Sequence[int]) -> list[int]:
        """The parts staged whole: part ``n`` is present when its file is ``lengths[n]`` bytes long."""
        return [n for n, length in enumerate(lengths) if self.has_part(org_id, transfer, n, length)]

    def stage(self, org_id: str, transfer: str, n: int, data: bytes) -> bool:
        """Write part ``n`` whole or not at all; False if it was already there."""
        folder = self.folder(org_id, transfer)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = folder / f"part-{n}"
        try:
            if final.stat().st_size == len(data):
                return False
            final.unlink()  # cut short by a power cut: it counts as missing, so it is written again
        except FileNotFoundError:
            pass
        temp = folder / f".part-{n}.{new_id('w', self.rng)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                # A link, not a rename: it fails if a concurrent upload of the same part won.
                os.link(temp, final)
            except FileExistsError:
                return False
            return True
        finally:
            temp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def reader(self, org_id: str, transfer: str, count: int, *, patience: float | None = None,
               handoff: Handoff | None = None, hashes: Sequence[str] | None = None) -> Iterator[BinaryIO]:
        """Parts 0 to ``count - 1`` as one stream; with ``patience``, parts still to come are waited for
        (PartsLate when one takes longer than that), in memory from ``handoff`` or on disk. With
        ``hashes``, each part read back from the disk is checked against its hash (StagedPartDamaged).

        The stream is unbuffered (its reads go straight to the part in hand) and also offers
        ``pieces(buffer)``: the parts as views, those handed over in memory without a copy."""
        paths = [self.folder(org_id, transfer) / f"part-{n}" for n in range(count)]
        with _PartsReader(paths, patience, handoff, hashes) as stream:
            yield stream  # type: ignore[misc]

    @contextlib.contextmanager
    def locked(self, org_id: str, transfer: str) -> Iterator[None]:
        """Only one commit of a transfer at a time, across threads and processes sharing this home."""
        folder = self.layout.staging_dir(org_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The lock file stays: removing it while another process waits on it would split the lock.
        fd = os.open(folder / f"{transfer}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def drop(self, org_id: str, transfer: str) -> None:
        """Remove the staged parts (kept: the lock, so a waiting commit still holds the same one)."""
        drop_folder(self.folder(org_id, transfer))

    def finished(self, org_id: str, transfer: str) -> None:
        """Clear the staged parts and the lock of a delivered transfer. Delivery is final, so a commit
        still waiting on the old lock file finds the transfer delivered and only answers the receipt."""
        self.drop(org_id, transfer)
        (self.layout.staging_dir(org_id) / f"{transfer}.lock").unlink(missing_ok=True)

    @contextlib.contextmanager
    def work_folder(self, org_id: str) -> Iterator[Path]:
        """A private folder for unpacking an offline package; removed afterwards whatever happens."""
        base = self.layout.staging_dir(org_id)
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = base / new_id("import", self.rng)
        work.mkdir(mode=0o700)
        try:
            yield work
        finally:
            drop_folder(work)


def drop_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
