"""The payload: a holding sealed with age to a partner's recipient, and opened again at the partner.

Plaintext never touches the disk on either side:

* a document is decrypted from its own blob and re-encrypted to the partner in one streaming pass
  (two processes joined by a pipe; see :func:`civicshare.crypto.datakeys.reseal`), in constant memory;
* a dataset is written as plain Parquet into an in-memory file (memfd), hashed and sealed from there.

At the recipient the ciphertext is checked against the signed manifest as it is read (an offline
package's hashed whole and part by part; a network transfer's part by part, as each arrived and
again if read back from the staging area); the plaintext is hashed too. A document sealed to the
sealing key the recipient made for it (civicshare.exchange.sealing_keys) is kept as the new holding's
blob as it arrives; any other document is re-sealed straight into a new holding under a fresh document
key; a dataset is decrypted into an in-memory file and imported as a new encrypted-Parquet holding.
The new holding appears only once every check passed; on any failure nothing is left behind.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from civicshare.access import Actor
from civicshare.crypto.agetool import age_command, pieces_of
from civicshare.crypto.atomicfile import write_all
from civicshare.crypto.datakeys import (
    Readable,
    Sink,
    age_decrypt,
    age_encrypt,
    decrypt_stream,
    document_recipient,
    write_new_file,
)
from civicshare.crypto.reseal import reseal, reseal_unmeasured
from civicshare.errors import IntegrityError, InvalidInput, NotForUs, Problem, UsageError
from civicshare.exchange.fields import Digest, age_recipient_text
from civicshare.exchange.manifest import (
    DATASET,
    DOCUMENT,
    MAX_PART_SIZE,
    PARQUET_MEDIA_TYPE,
    PART_SIZE,
    AgreementRef,
    HoldingInfo,
    Manifest,
)
from civicshare.exchange.sealing_keys import Reservation, SealingKeys
from civicshare.exchange.staging import StagedPartDamaged
from civicshare.exchange.tally import CHUNK, FileFollower, StreamHash
from civicshare.holdings.store import Holding
from civicshare.holdings.tabular import import_parquet, plain_parquet
from civicshare.memfile import memory_file

if TYPE_CHECKING:  # the node imports the exchange, not the other way round
    from civicshare.node import Node

class _Tap(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


class _TapReader:
    """Hands every byte read from ``src`` to ``tap`` as well."""

    def __init__(self, src: Readable, tap: _Tap) -> None:
        self._src = src
        self._tap = tap

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self._tap.update(data)
        return data

    def pieces(self, buffer: memoryview) -> Iterator[bytes | memoryview]:
        """What is left of ``src`` (see :func:`~civicshare.crypto.agetool.pieces_of`: parts handed over
        in memory come without a copy), each piece handed to ``tap`` first."""
        for piece in pieces_of(self._src, buffer):
            self._tap.update(piece)
            yield piece

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _ByteCount:
    """Counts a stream's bytes without hashing them (see :class:`_Opening`)."""

    def __init__(self) -> None:
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)


Writer = Callable[[bytes], object]


def _tee(*writers: Writer) -> Writer:
    def write(data: bytes) -> None:
        for w in writers:
            w(data)
    return write


@dataclass(frozen=True)
class SealedPayload:
    path: Path
    plaintext: Digest
    ciphertext: Digest
    part_size: int
    part_hashes: tuple[str, ...]
    holding: HoldingInfo

    def manifest(self, *, transfer: str, sender: str, recipient: str, created: datetime, age_recipient: str,
                 agreement: AgreementRef) -> Manifest:
        """The manifest describing this payload (unsigned; see ``sign_manifest``)."""
        return Manifest(transfer, sender, recipient, created.replace(microsecond=0), agreement, self.holding,
                        self.plaintext, self.ciphertext, age_recipient, self.part_size, self.part_hashes)


def check_part_size(part_size: int) -> int:
    if type(part_size) is not int or not 0 < part_size <= MAX_PART_SIZE:
        raise UsageError(f"A part is 1 to {MAX_PART_SIZE} bytes, not {part_size!r}.")
    return part_size


def seal_holding(node: Node, actor: Actor, holding_id: str, age_recipient: str, dest: Path, *,
                 part_size: int = PART_SIZE, columns: list[str] | None = None) -> SealedPayload:
    """Seal a copy of a holding to ``age_recipient`` at ``dest`` (0600; never overwritten: Conflict).

    The data key is unwrapped through the store, which logs key.unwrap. ``columns`` keeps only those
    fields of a dataset, in that order. Shredded for a shredded holding.
    """
    check_part_size(part_size)
    try:
        age_recipient_text(age_recipient)
    except InvalidInput as exc:
        raise UsageError(f"The recipient {exc.message}.") from None
    dest = Path(dest)
    holding, blob, key = node.holdings.open_for_sharing(actor, holding_id)
    plain, cipher = StreamHash(), StreamHash(part_size, parallel=True)
    if holding.kind == DOCUMENT:
        if columns is not None:
            raise UsageError("A document is shared whole; columns apply to datasets only.")

        def reseal_document(sink: Sink) -> None:
            with open(blob, "rb") as fh:
                if holding.sha256 is None or sink.fd is None or sink.path is None or age_command() is None:
                    plain.record(*reseal(fh, [key], [age_recipient], _tee(sink.write, cipher.update)))
                    return
                # Its fixity value is known, so the plaintext need not be measured again: the age
                # command writes the payload itself, and it is hashed from the file as it grows.
                follower = FileFollower(sink.path, cipher)
                try:
                    reseal_unmeasured(fh, [key], [age_recipient], sink.fd)
                except BaseException:
                    follower.abandon()
                    raise
                follower.finish()
                plain.record(holding.size, holding.sha256)

        # The caller records the transfer first and forces the payload to the disk while it is sent.
        write_new_file(dest, reseal_document, durable=False)
        info = HoldingInfo(holding.id, DOCUMENT, holding.name, holding.media_type, None, None,
                           holding.classification)
    else:
        with memory_file("civicshare-payload") as (_fd, path):
            rows, chosen = plain_parquet(blob, key, path, columns)
            with open(path, "rb") as fh:
                source = _TapReader(fh, plain)

                def seal_table(sink: Sink) -> None:
                    age_encrypt(source, [age_recipient], _tee(sink.write, cipher.update))

                write_new_file(dest, seal_table, durable=False)
        info = HoldingInfo(holding.id, DATASET, holding.name, PARQUET_MEDIA_TYPE, rows,
                           [{"name": c, "type": "string"} for c in chosen], holding.classification)
    return SealedPayload(dest, plain.digest(), cipher.digest(), part_size, cipher.part_hashes, info)


# At the recipient ----------------------------------------------------------------------------------

def _mismatches(manifest: Manifest, cipher: StreamHash | _ByteCount, plain: StreamHash | None) -> list[Problem]:
    problems = []
    if cipher.size != manifest.ciphertext.size:
        problems.append(Problem(f"is {cipher.size} bytes but the manifest says {manifest.ciphertext.size}",
                                field="ciphertext.size"))
    if isinstance(cipher, StreamHash) and not hmac.compare_digest(cipher.digest().sha256,
                                                                   manifest.ciphertext.sha256):
        problems.append(Problem("does not match the manifest", field="ciphertext.sha256"))
        for n, (mine, theirs) in enumerate(zip(cipher.part_hashes, manifest.part_hashes, strict=False)):
            if mine != theirs:
                problems.append(Problem("does not match the manifest", field=f"parts.sha256[{n}]"))
                break
    if plain is not None and not problems:
        got = plain.digest()
        if got.size != manifest.plaintext.size:
            problems.append(Problem(f"is {got.size} bytes but the manifest says {manifest.plaintext.size}",
                                    field="plaintext.size"))
        if not hmac.compare_digest(got.sha256, manifest.plaintext.sha256):
            problems.append(Problem("does not match the manifest", field="plaintext.sha256"))
    return problems


def _integrity(manifest: Manifest, problems: list[Problem]) -> IntegrityError:
    return IntegrityError(f"The payload of transfer {manifest.transfer} is not what its manifest says: it was "
                          "damaged on the way or tampered with", problems=problems)


class _Opening:
    """One payload being opened: the ciphertext is hashed as read, the plaintext as produced.

    With ``parts_verified`` the ciphertext is only counted. Every part was checked against the signed
    manifest's hash for it when it arrived, and a part read back from the staging area is checked
    again as it is read (StagedPartDamaged); parts in order, each of its stated length and hash, are
    exactly the sealed ciphertext, so hashing the whole of it again would repeat that check. The
    plaintext is still hashed and compared with the manifest.
    """

    def __init__(self, manifest: Manifest, source: BinaryIO, *, parts_verified: bool) -> None:
        self.manifest = manifest
        self.cipher: StreamHash | _ByteCount = _ByteCount() if parts_verified else StreamHash(manifest.part_size)
        self.plain = StreamHash()
        self.reader = _TapReader(source, self.cipher)

    def failed(self, exc: NotForUs | IntegrityError) -> Exception:
        """What a decryption failure means: if the bytes are not those the sender signed, the path
        damaged them (retry); if they are, the sender sealed them so that we cannot open them."""
        if isinstance(exc, StagedPartDamaged):
            return _integrity(self.manifest, exc.problems)
        try:
            self.reader.drain()
        except StagedPartDamaged as damaged:
            return _integrity(self.manifest, damaged.problems)
        problems = _mismatches(self.manifest, self.cipher, None)
        if problems:
            return _integrity(self.manifest, problems)
        if isinstance(exc, NotForUs):
            return NotForUs(f"The payload of transfer {self.manifest.transfer} is not sealed to this "
                            "organisation's receiving key.")
        return _integrity(self.manifest, [Problem("could not be decrypted", field="ciphertext")])

    def check(self) -> None:
        """Read whatever follows the age stream (so extra bytes count), then compare with the manifest."""
        try:
            self.reader.drain()
        except StagedPartDamaged as damaged:
            raise _integrity(self.manifest, damaged.problems) from None
        problems = _mismatches(self.manifest, self.cipher, self.plain)
        if problems:
            raise _integrity(self.manifest, problems)


def open_payload(node: Node, org_id: str, source: BinaryIO, manifest: Manifest, *, actor_name: str,
                 parts_verified: bool = False) -> Holding:
    """Decrypt the ciphertext ``source`` for ``org_id``, check it against ``manifest`` and store it as a
    new holding (created by the organisation's operator ``actor_name``; audited as holding.import).

    ``parts_verified``: every part of ``source`` was already checked against the manifest's hash for
    it (as the network route does on arrival), so the ciphertext is only counted (see ``_Opening``).
    A document sealed to the sealing key this organisation made for the transfer is kept as it came
    (``_store_as_sealed``).

    NotForUs when it is sealed or addressed to someone else; IntegrityError when any size or hash
    differs from the manifest, or it does not decrypt. On failure nothing is left behind.
    """
    key_id, ours = node.keys.age_recipient(org_id)
    if manifest.recipient != org_id:
        raise NotForUs(f"Transfer {manifest.transfer} is addressed to {manifest.recipient}, not {org_id}.")
    info = manifest.holding
    reserved = None
    if not hmac.compare_digest(manifest.age_recipient, ours):
        reserved = SealingKeys(node).sealed_to(org_id, manifest)
        if reserved is None:
            raise NotForUs(f"Transfer {manifest.transfer} is sealed to {manifest.age_recipient}, which is not the "
                           f"receiving key of {org_id}.")
    opening = _Opening(manifest, source, parts_verified=parts_verified)
    actor = Actor.operator(org_id, actor_name)
    if reserved is not None:
        return _store_as_sealed(node, actor, opening, reserved)
    identity = node.keystore(org_id).age_identity(key_id)

    def store_document(blob: Path, key: bytes) -> tuple[int, int | None, list[str] | None]:
        def produce(sink: Sink) -> None:
            try:
                # Straight into the new blob: the encrypting process writes it, nothing is copied through here.
                target = sink.fd if sink.fd is not None else sink.write
                opening.plain.record(*reseal(opening.reader, [identity], [document_recipient(key)], target))
            except (NotForUs, IntegrityError) as exc:
                raise opening.failed(exc) from None
            opening.check()

        write_new_file(blob, produce)
        return opening.plain.size, None, None

    def store_dataset(blob: Path, key: bytes) -> tuple[int, int | None, list[str] | None]:
        with memory_file("civicshare-received") as (fd, path):
            def write(data: bytes) -> None:
                opening.plain.update(data)
                write_all(fd, data)

            try:
                age_decrypt(opening.reader, [identity], write)
            except (NotForUs, IntegrityError) as exc:
                raise opening.failed(exc) from None
            opening.check()
            table = import_parquet(path, blob, key)
        if table.columns != info.column_names or table.rows != info.rows:
            blob.unlink(missing_ok=True)
            raise _integrity(manifest, [Problem("the received table's columns or rows differ from the manifest",
                                                field="holding")])
        return table.source_size, table.rows, table.columns

    return node.holdings.import_received(
        actor, info.kind, info.name, info.media_type,
        store_dataset if info.kind == DATASET else store_document,
        received_from=manifest.sender, transfer=manifest.transfer, classification=info.classification,
        sha256=manifest.plaintext.sha256 if info.kind == DOCUMENT else None)


class _Keep:
    """Writes every piece of the ciphertext read to the new holding's blob, as it goes by."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sink.write(data)  # type: ignore[arg-type]  # a view is written as it is
        self.size += len(data)


def _store_as_sealed(node: Node, actor: Actor, opening: _Opening, reserved: Reservation) -> Holding:
    """Keep the ciphertext as the new holding's blob: it is sealed to the data key reserved for it.

    It is decrypted once, as it is written, only to measure the plaintext and check it against the
    manifest; the blob appears only if every check passed.
    """
    manifest, info = opening.manifest, opening.manifest.holding
    key = SealingKeys(node).unwrap(reserved)

    def store(blob: Path, dek: bytes) -> tuple[int, int | None, list[str] | None]:
        def produce(sink: Sink) -> None:
            keep = _Keep(sink)
            try:
                decrypt_stream(_TapReader(opening.reader, keep), dek, opening.plain.update)
            except (NotForUs, IntegrityError) as exc:
                raise opening.failed(exc) from None
            opening.check()
            if keep.size != manifest.ciphertext.size:  # whatever followed the age stream was not kept
                raise _integrity(manifest, [Problem(f"is {opening.cipher.size} bytes but only {keep.size} were "
                                                    "part of the age stream", field="ciphertext.size")])

        # Written once and read only when the holding is opened: it need not fill the page cache.
        write_new_file(blob, produce, direct=True)
        return opening.plain.size, None, None

    return node.holdings.import_received(
        actor, info.kind, info.name, info.media_type, store, received_from=manifest.sender,
        transfer=manifest.transfer, classification=info.classification, sha256=manifest.plaintext.sha256,
        reserved=(reserved.holding_id, reserved.key_id, key))
