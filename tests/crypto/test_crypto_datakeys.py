"""Data keys, and documents sealed at rest with age: round trips, tampering, no partial output."""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
from pathlib import Path

import pyrage
import pytest

from civicshare.crypto import (
    document_recipient,
    fingerprint,
    new_document_key,
    new_table_key,
    open_sealed,
    open_sealed_to_file,
    seal_stream,
)
from civicshare.errors import Conflict, IntegrityError, NotFound, UsageError

# Sealing and opening run with the age command and with pyrage.
pytestmark = pytest.mark.usefixtures("age_engine")

SIZE = 5 * 1024 * 1024 + 12345  # several age chunks (64 KiB each) and a ragged last one


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return random.Random(20250401).randbytes(SIZE)


@pytest.fixture
def sealed(tmp_path: Path, plaintext: bytes) -> tuple[Path, bytes]:
    key = new_document_key()
    dest = tmp_path / "holding.age"
    # It returns the size and SHA-256 of exactly what it sealed: the document's fixity value.
    assert seal_stream(io.BytesIO(plaintext), dest, key) == (len(plaintext), hashlib.sha256(plaintext).hexdigest())
    return dest, key


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_table_keys_are_32_bytes_from_the_injected_rng() -> None:
    assert new_table_key(lambda n: b"\x07" * n) == b"\x07" * 32
    assert len(new_table_key()) == 32 and new_table_key() != new_table_key()
    with pytest.raises(UsageError):
        new_table_key(lambda n: b"short")


def test_document_keys_are_age_identities() -> None:
    key = new_document_key()
    assert key.startswith(b"AGE-SECRET-KEY-1") and key != new_document_key()
    identity = pyrage.x25519.Identity.from_str(key.decode())
    assert document_recipient(key) == str(identity.to_public())


def test_fingerprint_is_short_sha256_hex() -> None:
    assert fingerprint(b"") == "e3b0c44298fc1c149afbf4c8996fb924"
    assert fingerprint(b"\x01" * 32) == hashlib.sha256(b"\x01" * 32).hexdigest()[:32]
    with pytest.raises(UsageError):
        fingerprint("text")  # type: ignore[arg-type]


def test_seal_and_open_round_trip(sealed: tuple[Path, bytes], plaintext: bytes, tmp_path: Path) -> None:
    dest, key = sealed
    data = dest.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n")
    assert plaintext[:4096] not in data
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    out = io.BytesIO()
    open_sealed(dest, key, out)
    assert out.getvalue() == plaintext
    target = tmp_path / "opened.bin"
    open_sealed_to_file(dest, key, target)
    assert target.read_bytes() == plaintext
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _files(tmp_path) == ["holding.age", "opened.bin"]


def test_the_standard_age_format_opens_with_the_exported_identity(sealed: tuple[Path, bytes], plaintext: bytes) -> None:
    dest, key = sealed
    identity = pyrage.x25519.Identity.from_str(key.decode())
    assert pyrage.decrypt(dest.read_bytes(), [identity]) == plaintext


def test_empty_document(tmp_path: Path) -> None:
    key = new_document_key()
    assert seal_stream(io.BytesIO(b""), tmp_path / "empty.age", key) == (0, hashlib.sha256(b"").hexdigest())
    out = io.BytesIO()
    open_sealed(tmp_path / "empty.age", key, out)
    assert out.getvalue() == b""


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_tamper_late_in_the_file_is_caught_after_output_began(sealed: tuple[Path, bytes]) -> None:
    # This is why open_sealed_to_file exists: age has already released earlier chunks.
    dest, key = sealed
    _flip(dest, dest.stat().st_size - 100)
    out = io.BytesIO()
    with pytest.raises(IntegrityError, match="damaged or tampered"):
        open_sealed(dest, key, out)
    assert len(out.getvalue()) > 1024 * 1024


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_tampered_sealed_file_leaves_no_output(sealed: tuple[Path, bytes], tmp_path: Path, where: str) -> None:
    dest, key = sealed
    size = dest.stat().st_size
    _flip(dest, {"header": 30, "middle": size // 2, "end": size - 1}[where])
    target = tmp_path / "opened.bin"
    with pytest.raises(IntegrityError):
        open_sealed_to_file(dest, key, target)
    assert _files(tmp_path) == ["holding.age"]


def test_truncated_sealed_file_leaves_no_output(sealed: tuple[Path, bytes], tmp_path: Path) -> None:
    dest, key = sealed
    dest.write_bytes(dest.read_bytes()[: -64 * 1024])
    with pytest.raises(IntegrityError):
        open_sealed_to_file(dest, key, tmp_path / "opened.bin")
    assert _files(tmp_path) == ["holding.age"]


def test_wrong_key_is_refused(sealed: tuple[Path, bytes], tmp_path: Path) -> None:
    dest, _key = sealed
    with pytest.raises(IntegrityError):
        open_sealed_to_file(dest, new_document_key(), tmp_path / "opened.bin")
    assert _files(tmp_path) == ["holding.age"]


def test_malformed_key_is_a_usage_error(sealed: tuple[Path, bytes], tmp_path: Path) -> None:
    dest, _key = sealed
    for bad in (b"not a key", b"\xff", b""):
        with pytest.raises(UsageError):
            open_sealed_to_file(dest, bad, tmp_path / "opened.bin")
        with pytest.raises(UsageError):
            seal_stream(io.BytesIO(b"x"), tmp_path / "new.age", bad)
    assert _files(tmp_path) == ["holding.age"]


def test_missing_sealed_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        open_sealed(tmp_path / "nope.age", new_document_key(), io.BytesIO())
    with pytest.raises(NotFound):
        open_sealed_to_file(tmp_path / "nope.age", new_document_key(), tmp_path / "out")
    assert _files(tmp_path) == []


def test_existing_outputs_are_not_overwritten_unless_asked(sealed: tuple[Path, bytes], tmp_path: Path) -> None:
    dest, key = sealed
    with pytest.raises(Conflict):
        seal_stream(io.BytesIO(b"other"), dest, key)
    target = tmp_path / "opened.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(Conflict):
        open_sealed_to_file(dest, key, target)
    assert target.read_bytes() == b"keep me"
    open_sealed_to_file(dest, key, target, overwrite=True)
    assert target.stat().st_size == SIZE
    assert seal_stream(io.BytesIO(b"other"), dest, key, overwrite=True) == (5, hashlib.sha256(b"other").hexdigest())


class _FailingReader(io.RawIOBase):
    def __init__(self, after: int) -> None:
        self.left = after

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("the upload connection dropped")
        chunk = min(self.left, n if n > 0 else self.left)
        self.left -= chunk
        return b"a" * chunk


def test_a_failing_source_is_reported_as_itself_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="upload connection dropped"):
        seal_stream(_FailingReader(300_000), tmp_path / "doc.age", new_document_key())  # type: ignore[arg-type]
    assert _files(tmp_path) == []


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_a_failing_destination_is_not_reported_as_tampering(sealed: tuple[Path, bytes]) -> None:
    dest, key = sealed
    with pytest.raises(OSError, match="No space left") as info:
        open_sealed(dest, key, _FullDisk())  # type: ignore[arg-type]
    assert not isinstance(info.value, IntegrityError)


def test_a_stale_partial_from_a_crash_is_replaced(sealed: tuple[Path, bytes], tmp_path: Path, plaintext: bytes) -> None:
    dest, key = sealed
    target = tmp_path / "opened.bin"
    (tmp_path / "opened.bin.partial").write_bytes(b"left over")
    os.chmod(tmp_path / "opened.bin.partial", 0o644)
    open_sealed_to_file(dest, key, target)
    assert target.read_bytes() == plaintext
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _files(tmp_path) == ["holding.age", "opened.bin"]
