"""Offline packages: a signed manifest and its sealed payload in one uncompressed POSIX (ustar) tar.

Exactly two members, in this order: ``manifest.json`` and ``payload.age``. Anything else in the file
(another member, a link, a device, a path with folders, a manifest too large to be one) is refused.
Both writing and reading stream, so a package of any size needs constant memory.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

from civicshare.canonical import canonical_json, parse_json
from civicshare.crypto.atomicfile import open_private
from civicshare.crypto.datakeys import Sink, write_new_file
from civicshare.errors import Conflict, InvalidInput, NotFound, TooLarge
from civicshare.exchange.fields import read_document
from civicshare.exchange.manifest import MANIFEST, MAX_MANIFEST_BYTES
from civicshare.exchange.receipt import MAX_RECEIPT_BYTES, RECEIPT

MANIFEST_MEMBER = "manifest.json"
PAYLOAD_MEMBER = "payload.age"
# ustar writes sizes in 11 octal digits: 8 GiB - 1 is the largest member it can hold.
MAX_PAYLOAD_BYTES = 8**11 - 1
_TAR_MAGIC_OFFSET = 257
_COPY_CHUNK = 1024 * 1024


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = 0  # the manifest carries the time; the tar need not say anything more
    info.type = tarfile.REGTYPE
    return info


def write_package(dest: Path, manifest_document: dict[str, Any], payload: Path) -> None:
    """Write the package to ``dest`` (0600), atomically; an existing ``dest`` is never overwritten (Conflict)."""
    dest, payload = Path(dest), Path(payload)
    if dest.exists():
        raise Conflict(f"{dest} already exists; it was not overwritten.")
    if not payload.is_file():
        raise NotFound(f"There is no sealed payload at {payload}.")
    manifest = canonical_json(manifest_document)
    read_document(manifest, MANIFEST, MAX_MANIFEST_BYTES)
    size = payload.stat().st_size
    if size > MAX_PAYLOAD_BYTES:
        raise TooLarge(f"The payload is {size:,} bytes; an offline package holds at most {MAX_PAYLOAD_BYTES:,}. "
                       "Send it over the network instead.")

    def produce(sink: Sink) -> None:
        # A stream ("w|") needs only write(): the package goes straight through the atomic writer.
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[call-overload]
            tar.addfile(_member(MANIFEST_MEMBER, len(manifest)), BytesIO(manifest))
            with open(payload, "rb") as body:
                tar.addfile(_member(PAYLOAD_MEMBER, size), body)

    write_new_file(dest, produce)


def _refuse(src: Path, message: str) -> InvalidInput:
    return InvalidInput(f"{src.name} is not a civicshare package: {message}.")


def _check_member(src: Path, info: tarfile.TarInfo | None, name: str) -> tarfile.TarInfo:
    if info is None:
        raise _refuse(src, f"it ends before its {name} member")
    if info.name != name:
        raise _refuse(src, f"it holds {info.name!r} where {name!r} should be")
    if not info.isreg():
        raise _refuse(src, f"{name} is not a regular file")
    return info


def read_package(src: Path, work_dir: Path) -> tuple[dict[str, Any], Path]:
    """The (unverified) manifest document and the path of the extracted ciphertext in ``work_dir``.

    ``work_dir`` is created private (0700) if missing. Refuses (InvalidInput, TooLarge) anything but
    exactly the two expected regular-file members; nothing is extracted from a refused package.
    """
    src, work_dir = Path(src), Path(work_dir)
    if not src.is_file():
        raise NotFound(f"There is no package at {src}.")
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(work_dir, 0o700)
    out = work_dir / PAYLOAD_MEMBER
    if out.exists():
        raise Conflict(f"{out} already exists; read the package into an empty folder.")
    try:
        with tarfile.open(src, mode="r:") as tar:
            first = _check_member(src, tar.next(), MANIFEST_MEMBER)
            if first.size > MAX_MANIFEST_BYTES:
                raise TooLarge(f"The manifest in {src.name} is {first.size:,} bytes; a manifest is never more than "
                               f"{MAX_MANIFEST_BYTES:,}.")
            manifest_file = tar.extractfile(first)
            assert manifest_file is not None
            text = manifest_file.read()
            if len(text) != first.size:
                raise _refuse(src, "it is cut short")
            document = read_document(text, MANIFEST, MAX_MANIFEST_BYTES)
            second = _check_member(src, tar.next(), PAYLOAD_MEMBER)
            if second.size == 0:
                raise _refuse(src, "its payload is empty")
            body = tar.extractfile(second)
            assert body is not None
            fd = open_private(out)
            with os.fdopen(fd, "wb") as fh:
                shutil.copyfileobj(body, fh, _COPY_CHUNK)
                if fh.tell() != second.size:
                    raise _refuse(src, "it is cut short")
            if tar.next() is not None:
                raise _refuse(src, "it holds more than a manifest and a payload")
    except tarfile.TarError:
        out.unlink(missing_ok=True)
        raise _refuse(src, "it is not an uncompressed tar file, or it is damaged or cut short") from None
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return document, out


def package_kind(path: Path) -> str:
    """``"package"`` for an offline package (a tar), ``"receipt"`` for a signed receipt; InvalidInput otherwise.

    Only tells which it claims to be; reading it (``read_package``, ``parse_receipt``) checks it.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"There is no file at {path}.")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if len(head) == 512 and head[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "package"
    if head.lstrip()[:1] == b"{":
        if path.stat().st_size > MAX_RECEIPT_BYTES:
            raise TooLarge(f"{path.name} is too large to be a receipt.")
        document = parse_json(path.read_bytes())
        if isinstance(document, dict) and document.get("civicshare") == RECEIPT:
            return "receipt"
        if isinstance(document, dict) and isinstance(document.get("civicshare"), str):
            raise InvalidInput(f"{path.name} is a civicshare {document['civicshare']!r} document, not a package "
                               "or a receipt.")
    raise InvalidInput(f"{path.name} is neither a civicshare package (a tar file) nor a receipt (JSON).")


def write_receipt(path: Path, data: bytes) -> None:
    """Write the receipt file of an offline package (public: it holds hashes and signatures, no personal
    data), atomically."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
