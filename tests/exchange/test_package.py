"""Offline packages: exactly a manifest and a payload in a plain tar; anything else is refused."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from civicshare.canonical import canonical_json
from civicshare.errors import Conflict, InvalidInput, TooLarge
from civicshare.exchange.manifest import MAX_MANIFEST_BYTES
from civicshare.exchange.package import package_kind, read_package, write_package
from tests.exchange.test_manifest import signed as signed_manifest
from tests.exchange.test_receipt import signed as signed_receipt

PAYLOAD = os.urandom(70_000)


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.age"
    path.write_bytes(PAYLOAD)
    return path


def test_round_trip(tmp_path: Path, payload: Path) -> None:
    document = signed_manifest()
    dest = tmp_path / "share.tar"
    write_package(dest, document, payload)
    assert dest.stat().st_mode & 0o777 == 0o600 and not (tmp_path / "share.tar.partial").exists()
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["manifest.json", "payload.age"]
        assert all(m.isreg() for m in members)
    assert dest.read_bytes()[257:263] == b"ustar\x00"  # POSIX ustar, uncompressed
    got, extracted = read_package(dest, tmp_path / "work")
    assert got == document and extracted.read_bytes() == PAYLOAD
    assert (tmp_path / "work").stat().st_mode & 0o777 == 0o700 and extracted.stat().st_mode & 0o777 == 0o600
    assert package_kind(dest) == "package"


def test_never_overwrites(tmp_path: Path, payload: Path) -> None:
    dest = tmp_path / "share.tar"
    dest.write_bytes(b"keep")
    with pytest.raises(Conflict):
        write_package(dest, signed_manifest(), payload)
    assert dest.read_bytes() == b"keep"


def test_refuses_a_manifest_that_is_not_one(tmp_path: Path, payload: Path) -> None:
    with pytest.raises(InvalidInput):
        write_package(tmp_path / "share.tar", signed_receipt(), payload)
    assert not list(tmp_path.glob("share.tar*"))


def _tar(path: Path, add: Callable[[tarfile.TarFile], None], fmt: int = tarfile.USTAR_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        add(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes, **attrs: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


MANIFEST_BYTES = canonical_json(signed_manifest())


def _good(tar: tarfile.TarFile) -> None:
    _file(tar, "manifest.json", MANIFEST_BYTES)
    _file(tar, "payload.age", PAYLOAD)


def _symlink(tar: tarfile.TarFile) -> None:
    _file(tar, "manifest.json", MANIFEST_BYTES)
    info = tarfile.TarInfo("payload.age")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def _hardlink(tar: tarfile.TarFile) -> None:
    _file(tar, "manifest.json", MANIFEST_BYTES)
    info = tarfile.TarInfo("payload.age")
    info.type, info.linkname = tarfile.LNKTYPE, "manifest.json"
    tar.addfile(info)


def _device(tar: tarfile.TarFile) -> None:
    _file(tar, "manifest.json", MANIFEST_BYTES)
    info = tarfile.TarInfo("payload.age")
    info.type = tarfile.CHRTYPE
    tar.addfile(info)


HOSTILE: dict[str, Callable[[tarfile.TarFile], None]] = {
    "extra member": lambda tar: (_good(tar), _file(tar, "extra.txt", b"x")),
    "symlink": _symlink,
    "hard link": _hardlink,
    "device": _device,
    "absolute path": lambda tar: (_file(tar, "/manifest.json", MANIFEST_BYTES), _file(tar, "payload.age", PAYLOAD)),
    "path with folder": lambda tar: (_file(tar, "../manifest.json", MANIFEST_BYTES),
                                     _file(tar, "payload.age", PAYLOAD)),
    "wrong order": lambda tar: (_file(tar, "payload.age", PAYLOAD), _file(tar, "manifest.json", MANIFEST_BYTES)),
    "no payload": lambda tar: _file(tar, "manifest.json", MANIFEST_BYTES),
    "empty payload": lambda tar: (_file(tar, "manifest.json", MANIFEST_BYTES), _file(tar, "payload.age", b"")),
    "empty": lambda tar: None,
    "not a manifest": lambda tar: (_file(tar, "manifest.json", canonical_json(signed_receipt())),
                                   _file(tar, "payload.age", PAYLOAD)),
    "manifest not json": lambda tar: (_file(tar, "manifest.json", b"\x00garbage"), _file(tar, "payload.age", PAYLOAD)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_tars_are_refused(tmp_path: Path, name: str) -> None:
    src = _tar(tmp_path / "evil.tar", HOSTILE[name])
    work = tmp_path / "work"
    with pytest.raises(InvalidInput):
        read_package(src, work)
    assert list(work.iterdir()) == []


def test_oversized_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # A sparse file stands in for a huge member: only its header is ever looked at.
    src = tmp_path / "big.tar"
    info = tarfile.TarInfo("manifest.json")
    info.size = MAX_MANIFEST_BYTES + 1
    with open(src, "wb") as fh:
        fh.write(info.tobuf(tarfile.USTAR_FORMAT))
        fh.truncate(512 + MAX_MANIFEST_BYTES + 1024)
    with pytest.raises(TooLarge):
        read_package(src, tmp_path / "work")


PAYLOAD_END = 512 + -(-len(MANIFEST_BYTES) // 512) * 512 + 512 + len(PAYLOAD)


@pytest.mark.parametrize("cut", [100, 600, 512 + len(MANIFEST_BYTES) + 700, PAYLOAD_END - 1])
def test_truncated_packages_are_refused(tmp_path: Path, cut: int) -> None:
    data = _tar(tmp_path / "good.tar", _good).read_bytes()
    src = tmp_path / "cut.tar"
    src.write_bytes(data[:cut])
    work = tmp_path / "work"
    with pytest.raises(InvalidInput):
        read_package(src, work)
    assert not (work / "payload.age").exists()


def test_compressed_tar_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "share.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        _good(tar)
    with pytest.raises(InvalidInput):
        read_package(src, tmp_path / "work")
    with pytest.raises(InvalidInput):
        package_kind(src)


def test_package_kind(tmp_path: Path) -> None:
    receipt = tmp_path / "share.tar.receipt.json"
    receipt.write_text(json.dumps(signed_receipt(), indent=2))
    assert package_kind(receipt) == "receipt"
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(MANIFEST_BYTES)
    with pytest.raises(InvalidInput, match="'manifest' document"):
        package_kind(manifest)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InvalidInput):
        package_kind(other)
    assert package_kind(_tar(tmp_path / "x.tar", _good)) == "package"
