"""Re-sealing an age stream to new recipients through the decrypting helper process (agepipe)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pyrage
import pytest

from civicshare.crypto import agepipe
from civicshare.crypto.reseal import reseal, reseal_unmeasured
from civicshare.errors import IntegrityError, NotForUs, UsageError

SIZE = 3 * 1024 * 1024 + 777  # several age chunks and a ragged last one


pytestmark = pytest.mark.usefixtures("age_engine")


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return random.Random(6).randbytes(SIZE)


@pytest.fixture(scope="module")
def keys() -> tuple[pyrage.x25519.Identity, pyrage.x25519.Identity]:
    return pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()


@pytest.fixture(scope="module")
def sealed(plaintext: bytes, keys: tuple[pyrage.x25519.Identity, pyrage.x25519.Identity]) -> bytes:
    return pyrage.encrypt(plaintext, [keys[0].to_public()])


class Chunks:
    """A stream that is not a file, handing out small reads (as the staged-parts reader does)."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        return self._src.read(min(n, 100_000) if n > 0 else 100_000)


def _reseal(src: object, keys: tuple[pyrage.x25519.Identity, pyrage.x25519.Identity]) -> tuple[bytes, tuple[int, str]]:
    out = io.BytesIO()
    digest = reseal(src, [str(keys[0])], [str(keys[1].to_public())], out.write)  # type: ignore[arg-type]
    return out.getvalue(), digest


def test_reseal_from_a_stream_opens_with_the_new_key_only(sealed: bytes, plaintext: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    src = Chunks(sealed)
    resealed, digest = _reseal(src, keys)
    assert src.reads > 1
    assert digest == (len(plaintext), hashlib.sha256(plaintext).hexdigest())
    assert pyrage.decrypt(resealed, [keys[1]]) == plaintext
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(resealed, [keys[0]])


def test_reseal_from_a_file_reads_it_from_its_current_offset(tmp_path: Path, sealed: bytes, plaintext: bytes,
                                                              keys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "in.age"
    path.write_bytes(b"HEADER" + sealed)
    with open(path, "rb") as fh:
        assert fh.read(6) == b"HEADER"  # the buffered reader has read ahead: reseal must not skip that
        resealed, digest = _reseal(fh, keys)
    assert digest == (len(plaintext), hashlib.sha256(plaintext).hexdigest())
    assert pyrage.decrypt(resealed, [keys[1]]) == plaintext


def test_reseal_into_a_file_the_encrypting_process_writes_itself(tmp_path: Path, sealed: bytes, plaintext: bytes,
                                                                  keys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out.age"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        digest = reseal(Chunks(sealed), [str(keys[0])], [str(keys[1].to_public())], fd)
    finally:
        os.close(fd)
    assert digest == (len(plaintext), hashlib.sha256(plaintext).hexdigest())
    assert pyrage.decrypt(path.read_bytes(), [keys[1]]) == plaintext


def test_damage_is_an_integrity_error_also_when_writing_into_a_file(tmp_path: Path, sealed: bytes,
                                                                    keys) -> None:  # type: ignore[no-untyped-def]
    damaged = bytearray(sealed)
    damaged[len(damaged) - 100] ^= 1
    fd = os.open(tmp_path / "out.age", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with pytest.raises(IntegrityError):
            reseal(Chunks(bytes(damaged)), [str(keys[0])], [str(keys[1].to_public())], fd)
    finally:
        os.close(fd)


def test_an_empty_plaintext(keys) -> None:  # type: ignore[no-untyped-def]
    resealed, digest = _reseal(Chunks(pyrage.encrypt(b"", [keys[0].to_public()])), keys)
    assert digest == (0, hashlib.sha256(b"").hexdigest())
    assert pyrage.decrypt(resealed, [keys[1]]) == b""


def test_a_stream_for_someone_else_is_not_for_us(sealed: bytes) -> None:
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(NotForUs):
        reseal(Chunks(sealed), [str(other)], [str(other.to_public())], lambda data: None)


@pytest.mark.parametrize("where", ["early", "late"])
def test_damage_is_an_integrity_error_even_after_output_began(sealed: bytes, keys, where: str) -> None:  # type: ignore[no-untyped-def]
    damaged = bytearray(sealed)
    damaged[300 if where == "early" else len(damaged) - 100] ^= 1
    with pytest.raises(IntegrityError):
        _reseal(Chunks(bytes(damaged)), keys)


def test_a_truncated_stream_is_never_accepted_as_a_short_plaintext(sealed: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError):
        _reseal(Chunks(sealed[: 2 * 65536 + 500]), keys)


def test_a_failing_source_is_reported_as_itself(sealed: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    class Failing(Chunks):
        def read(self, n: int = -1) -> bytes:
            if self.reads == 3:
                raise OSError("disk gone")
            return super().read(n)

    with pytest.raises(OSError, match="disk gone"):
        _reseal(Failing(sealed), keys)


def test_a_failing_destination_ends_the_helper_and_is_reported_as_itself(sealed: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    before = threading.active_count()
    written = []

    def out(data: bytes) -> None:
        written.append(len(data))
        if len(written) == 2:
            raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        reseal(Chunks(sealed), [str(keys[0])], [str(keys[1].to_public())], out)
    assert threading.active_count() == before  # the feeding thread was joined
    # Every helper was reaped: no zombie children of this process are left.
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_unusable_keys_are_usage_errors(sealed: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        reseal(Chunks(sealed), [b"AGE-SECRET-KEY-1NOPE"], [str(keys[1].to_public())], lambda data: None)
    with pytest.raises(UsageError):
        reseal(Chunks(sealed), [str(keys[0])], ["age1nope"], lambda data: None)


def _helper(key_text: bytes, stdin: bytes) -> tuple[int, bytes, str]:
    key_r, key_w = os.pipe()
    status_r, status_w = os.pipe()
    os.write(key_w, key_text)
    os.close(key_w)
    proc = subprocess.run([sys.executable, "-I", agepipe.__file__, "decrypt", str(key_r), str(status_w)],
                          input=stdin, capture_output=True, pass_fds=(key_r, status_w), check=False)
    os.close(key_r)
    os.close(status_w)
    with os.fdopen(status_r, "rb") as fh:
        status = fh.read().decode("ascii")
    return proc.returncode, proc.stdout, status


def test_the_helper_takes_its_key_from_the_pipe_and_reports_one_line(sealed: bytes, plaintext: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    code, out, status = _helper(str(keys[0]).encode("ascii") + b"\n", sealed)
    assert (code, out) == (0, plaintext)
    assert status == f"ok {len(plaintext)} {hashlib.sha256(plaintext).hexdigest()}\n"


@pytest.mark.parametrize(("key", "data", "kind", "code"), [
    ("other", "sealed", "not_for_us", agepipe.EXIT_CODES["not_for_us"]),
    ("right", "damaged", "integrity", agepipe.EXIT_CODES["integrity"]),
    ("none", "sealed", "error", agepipe.EXIT_CODES["error"]),
])
def test_the_helper_names_each_failure(sealed: bytes, keys, key: str, data: str, kind: str, code: int) -> None:  # type: ignore[no-untyped-def]
    key_text = {"other": str(pyrage.x25519.Identity.generate()).encode(), "right": str(keys[0]).encode(),
                "none": b""}[key]
    stdin = sealed if data == "sealed" else sealed[:-50] + bytes(50)
    got_code, _out, status = _helper(key_text, stdin)
    assert got_code == code
    assert status.startswith(kind + " ") and status.count("\n") == 1


def test_a_named_age_command_that_is_not_a_program_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, sealed: bytes,
                                                                      keys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIVICSHARE_AGE", "/nonexistent/age")
    with pytest.raises(UsageError, match="CIVICSHARE_AGE"):
        _reseal(Chunks(sealed), keys)


def _relay(stdin: bytes) -> tuple[int, bytes, str]:
    status_r, status_w = os.pipe()
    proc = subprocess.run([sys.executable, "-I", agepipe.__file__, "relay", str(status_w)], input=stdin,
                          capture_output=True, pass_fds=(status_w,), check=False)
    os.close(status_w)
    with os.fdopen(status_r, "rb") as fh:
        return proc.returncode, proc.stdout, fh.read().decode("ascii")


@pytest.mark.parametrize("size", [0, 1, 1 << 20, 3 * (1 << 20) + 5])
def test_the_relay_passes_the_stream_through_and_measures_it(size: int) -> None:
    data = random.Random(size).randbytes(size)
    code, out, status = _relay(data)
    assert (code, out) == (0, data)
    assert status == f"ok {size} {hashlib.sha256(data).hexdigest()}\n"


def _reseal_unmeasured_into(path: Path, src: object, identity: str, recipient: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert reseal_unmeasured(src, [identity], [recipient], fd) is None  # type: ignore[arg-type, func-returns-value]
    finally:
        os.close(fd)


def test_reseal_unmeasured_writes_a_file_that_opens_with_the_new_key_only(tmp_path: Path, sealed: bytes,
                                                                          plaintext: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out.age"
    _reseal_unmeasured_into(path, Chunks(sealed), str(keys[0]), str(keys[1].to_public()))
    assert pyrage.decrypt(path.read_bytes(), [keys[1]]) == plaintext
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(path.read_bytes(), [keys[0]])


@pytest.mark.parametrize("where", ["first chunk", "middle", "last chunk"])
def test_reseal_unmeasured_still_refuses_damage(tmp_path: Path, sealed: bytes, keys, where: str) -> None:  # type: ignore[no-untyped-def]
    # Without the relay nothing measures the plaintext, so a decryption that fails late must still raise:
    # the encrypting process would otherwise have sealed a shortened plaintext without complaint.
    damaged = bytearray(sealed)
    damaged[{"first chunk": 300, "middle": len(damaged) // 2, "last chunk": len(damaged) - 5}[where]] ^= 1
    with pytest.raises(IntegrityError):
        _reseal_unmeasured_into(tmp_path / "out.age", Chunks(bytes(damaged)), str(keys[0]), str(keys[1].to_public()))
    with pytest.raises(IntegrityError):
        _reseal_unmeasured_into(tmp_path / "cut.age", Chunks(sealed[:-1000]), str(keys[0]), str(keys[1].to_public()))


def test_reseal_unmeasured_refuses_a_stream_for_someone_else(tmp_path: Path, sealed: bytes, keys) -> None:  # type: ignore[no-untyped-def]
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(NotForUs):
        _reseal_unmeasured_into(tmp_path / "out.age", Chunks(sealed), str(stranger), str(keys[1].to_public()))
