"""Sealed payloads: a holding sealed at north-wold opens as a new holding at south-fen, byte for byte;
anything sealed to someone else, damaged or mis-described is refused and leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.access import Role
from civicshare.errors import Conflict, IntegrityError, NotForUs, Shredded, UsageError
from civicshare.exchange.fields import Digest
from civicshare.exchange.manifest import Manifest
from civicshare.exchange.payload import open_payload
from civicshare.exchange.tally import StreamHash, hash_file
from civicshare.node import Node
from tests.conftest import actor
from tests.exchange.payload_support import (
    AGE,
    NORTH,
    SOUTH,
    left_behind,
    make_dataset,
    make_document,
    open_at_south,
    seal_for_south,
)


def test_stream_hash_splits_parts_exactly() -> None:
    tally = StreamHash(part_size=4)
    for piece in (b"ab", b"cdefg", b"", b"hij"):
        tally.update(piece)
    assert tally.digest() == Digest(10, hashlib.sha256(b"abcdefghij").hexdigest())
    assert tally.part_hashes == tuple(hashlib.sha256(p).hexdigest() for p in (b"abcd", b"efgh", b"ij"))


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.binary(max_size=40), max_size=12), part_size=st.integers(1, 17))
def test_stream_hash_in_parallel_agrees_with_hashing_in_turn(pieces: list[bytes], part_size: int) -> None:
    together, in_turn = StreamHash(part_size, parallel=True), StreamHash(part_size)
    buffer = bytearray(64)
    for piece in pieces:
        # The caller reuses its buffer once update returns, as the sealing loop does.
        buffer[:len(piece)] = piece
        together.update(memoryview(buffer)[:len(piece)])  # type: ignore[arg-type]
        buffer[:len(piece)] = bytes(len(piece))
        in_turn.update(piece)
    whole = b"".join(pieces)
    assert together.digest() == in_turn.digest() == Digest(len(whole), hashlib.sha256(whole).hexdigest())
    assert together.part_hashes == in_turn.part_hashes


def test_dataset_round_trip_is_row_identical(node: Node, tmp_path: Path) -> None:
    hid = make_dataset(node, tmp_path)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age", part_size=200)
    assert sealed.holding.kind == "dataset" and sealed.holding.rows == 3
    assert sealed.holding.columns == [{"name": c, "type": "string"} for c in ("nhs_number", "surname", "postcode")]
    assert (tmp_path / "payload.age").stat().st_mode & 0o777 == 0o600
    assert hash_file(sealed.path, 200).part_hashes == sealed.part_hashes and len(sealed.part_hashes) > 1
    assert Manifest.from_body(manifest.to_body()) == manifest
    holding = open_at_south(node, sealed.path, manifest)
    assert holding.org_id == SOUTH and holding.kind == "dataset" and holding.rows == 3  # type: ignore[attr-defined]
    assert holding.columns == ["nhs_number", "surname", "postcode"] and holding.format == "parquet"  # type: ignore[attr-defined]
    out_north, out_south = tmp_path / "north.csv", tmp_path / "south.csv"
    node.export(actor(NORTH), hid, out_north)
    node.export(actor(SOUTH), holding.id, out_south)  # type: ignore[attr-defined]
    assert out_south.read_bytes() == out_north.read_bytes()
    assert "0123456789,O'Brien" in out_south.read_text()
    entry = [e for e in node.audit.entries(SOUTH) if e.action == "holding.import"][-1]
    assert entry.actor == "cli:receiver" and entry.outcome == "ok"
    assert entry.details["received_from"] == NORTH and entry.details["transfer"] == "t_abcdefghijklmnop"
    assert any(e.action == "key.unwrap" and e.object is not None for e in node.audit.entries(NORTH))


def test_dataset_columns_can_be_chosen(node: Node, tmp_path: Path) -> None:
    hid = make_dataset(node, tmp_path)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age", columns=["postcode", "nhs_number"])
    assert [c["name"] for c in sealed.holding.columns or []] == ["postcode", "nhs_number"]
    holding = open_at_south(node, sealed.path, manifest)
    out = tmp_path / "south.csv"
    node.export(actor(SOUTH), holding.id, out)  # type: ignore[attr-defined]
    assert out.read_text().splitlines() == ["postcode,nhs_number", "NW1 1AA,0123456789", ",0987654321",
                                            "SF2 2BB,"]
    with pytest.raises(UsageError, match="no column 'age'"):
        seal_for_south(node, hid, tmp_path / "other.age", columns=["age"])
    assert not (tmp_path / "other.age").exists() and not (tmp_path / "other.age.partial").exists()


@pytest.mark.parametrize("classification", ["OFFICIAL", "OFFICIAL-SENSITIVE"])
def test_the_classification_travels_with_the_holding(node: Node, tmp_path: Path, classification: str) -> None:
    hid = node.import_document(actor(NORTH), io.BytesIO(b"care plan"), "plan.pdf",
                               classification=classification).id
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    assert manifest.holding.classification == classification
    received = open_at_south(node, sealed.path, manifest)
    assert received.classification == classification  # type: ignore[attr-defined]
    assert node.holding(actor(SOUTH), received.id).to_json()["classification"] == classification  # type: ignore[attr-defined]


def test_document_round_trip_is_byte_identical(node: Node, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    hid = make_document(node, data)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age", part_size=65536)
    assert sealed.holding.kind == "document" and sealed.holding.media_type == "application/pdf"
    assert sealed.plaintext.size == len(data) and len(sealed.part_hashes) == -(-sealed.ciphertext.size // 65536)
    holding = open_at_south(node, sealed.path, manifest)
    assert holding.size == len(data) and holding.media_type == "application/pdf"  # type: ignore[attr-defined]
    out = tmp_path / "letter.pdf"
    node.export(actor(SOUTH), holding.id, out)  # type: ignore[attr-defined]
    assert out.read_bytes() == data
    # The received copy is sealed under its own new key, not the sender's and not the transfer's.
    blob = node.layout.home / holding.blob  # type: ignore[attr-defined]
    assert blob.read_bytes() != sealed.path.read_bytes()


@pytest.mark.parametrize("kind", ["dataset", "document"])
def test_payload_opens_with_the_age_tool(node: Node, tmp_path: Path, kind: str) -> None:
    data = b"hello south fen\n" * 1000
    hid = make_dataset(node, tmp_path) if kind == "dataset" else make_document(node, data)
    sealed, _manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    identity = tmp_path / "south.key"
    node.export_age_identity(actor(SOUTH, Role.ADMIN), identity)
    out = subprocess.run([AGE, "--decrypt", "-i", str(identity), str(sealed.path)], capture_output=True,
                         check=True).stdout
    assert len(out) == sealed.plaintext.size
    if kind == "document":
        assert out == data
    else:
        assert out[:4] == b"PAR1" and out[-4:] == b"PAR1"
    wrong = tmp_path / "north.key"
    node.export_age_identity(actor(NORTH, Role.ADMIN), wrong)
    assert subprocess.run([AGE, "--decrypt", "-i", str(wrong), str(sealed.path)], capture_output=True).returncode != 0


def test_dest_is_never_overwritten(node: Node, tmp_path: Path) -> None:
    hid = make_document(node, b"x" * 10)
    (tmp_path / "payload.age").write_bytes(b"keep me")
    with pytest.raises(Conflict):
        seal_for_south(node, hid, tmp_path / "payload.age")
    assert (tmp_path / "payload.age").read_bytes() == b"keep me"


def test_shredded_holding_is_refused(node: Node, tmp_path: Path) -> None:
    hid = make_document(node, b"x" * 10)
    node.shred(actor(NORTH), hid)
    with pytest.raises(Shredded):
        seal_for_south(node, hid, tmp_path / "payload.age")
    assert not list(tmp_path.glob("payload.age*"))


@pytest.mark.parametrize("kind", ["dataset", "document"])
def test_sealed_to_someone_else_is_not_for_us_and_leaves_nothing(node: Node, tmp_path: Path, kind: str) -> None:
    hid = make_dataset(node, tmp_path) if kind == "dataset" else make_document(node, b"secret" * 1000)
    # Sealed to north-wold's own key, but the manifest claims south-fen's: the header does not open.
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age", to=NORTH)
    _key, south = node.keys.age_recipient(SOUTH)
    lying = Manifest(**{**manifest.__dict__, "age_recipient": south})
    before = left_behind(node)
    with pytest.raises(NotForUs):
        open_at_south(node, sealed.path, lying)
    assert left_behind(node) == before
    # A manifest naming another recipient key is refused before anything is read.
    with pytest.raises(NotForUs, match="not the receiving key"):
        open_at_south(node, sealed.path, manifest)
    elsewhere = Manifest(**{**manifest.__dict__, "recipient": "east-marsh"})
    with pytest.raises(NotForUs, match="addressed to east-marsh"):
        open_at_south(node, sealed.path, elsewhere)
    assert left_behind(node) == before


@pytest.mark.parametrize("kind", ["dataset", "document"])
@pytest.mark.parametrize("where", ["header", "body", "end"])
def test_flipped_ciphertext_byte_is_an_integrity_error_and_leaves_nothing(node: Node, tmp_path: Path, kind: str,
                                                                          where: str) -> None:
    hid = make_dataset(node, tmp_path) if kind == "dataset" else make_document(node, os.urandom(200_000))
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    data = bytearray(sealed.path.read_bytes())
    index = {"header": 60, "body": len(data) // 2, "end": len(data) - 1}[where]
    data[index] ^= 0x01
    damaged = tmp_path / "damaged.age"
    damaged.write_bytes(bytes(data))
    before = left_behind(node)
    # A damaged header looks like "not our key" to age; the hash shows it is damage, which is retried.
    with pytest.raises(IntegrityError) as caught:
        open_at_south(node, damaged, manifest)
    assert not isinstance(caught.value, NotForUs)
    assert any(p.field == "ciphertext.sha256" for p in caught.value.problems)
    assert left_behind(node) == before


@pytest.mark.parametrize("kind", ["dataset", "document"])
def test_extra_or_missing_bytes_are_integrity_errors(node: Node, tmp_path: Path, kind: str) -> None:
    hid = make_dataset(node, tmp_path) if kind == "dataset" else make_document(node, os.urandom(100_000))
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    before = left_behind(node)
    for data in (sealed.path.read_bytes() + b"\0", sealed.path.read_bytes()[:-1]):
        with pytest.raises(IntegrityError):
            open_payload(node, SOUTH, io.BytesIO(data), manifest, actor_name="receiver")
    assert left_behind(node) == before


@pytest.mark.parametrize("kind", ["dataset", "document"])
@pytest.mark.parametrize("change", ["sha256", "size"])
def test_plaintext_mismatch_in_manifest_is_refused_and_leaves_nothing(node: Node, tmp_path: Path, kind: str,
                                                                      change: str) -> None:
    hid = make_dataset(node, tmp_path) if kind == "dataset" else make_document(node, os.urandom(100_000))
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    plain = manifest.plaintext
    wrong = Digest(plain.size, "0" * 64) if change == "sha256" else Digest(plain.size - 1, plain.sha256)
    lying = Manifest(**{**manifest.__dict__, "plaintext": wrong})
    before = left_behind(node)
    with pytest.raises(IntegrityError) as caught:
        open_at_south(node, sealed.path, lying)
    assert [p.field for p in caught.value.problems] == [f"plaintext.{change}"]
    assert left_behind(node) == before


def test_dataset_rows_differing_from_the_manifest_are_refused(node: Node, tmp_path: Path) -> None:
    hid = make_dataset(node, tmp_path)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    holding = manifest.holding.__class__(**{**manifest.holding.__dict__, "rows": 4})
    before = left_behind(node)
    with pytest.raises(IntegrityError, match="not what its manifest says"):
        open_at_south(node, sealed.path, Manifest(**{**manifest.__dict__, "holding": holding}))
    assert left_behind(node) == before


MEMORY_SCRIPT = r"""
import io, os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from civicshare.access import Actor, Role
from civicshare.crypto import KdfParams
from civicshare.exchange.manifest import AgreementRef
from civicshare.exchange.payload import open_payload, seal_holding
from civicshare.node import Node

size = int(sys.argv[2])
home = Path(sys.argv[1])
node = Node.init(home / "home", "north-wold", "North", passphrase="pw pw pw pw pw", kdf=KdfParams.fast_for_tests())
node.add_organisation("south-fen", "South")

class Random(io.RawIOBase):
    left = size
    def readable(self): return True
    def readinto(self, b):
        n = min(len(b), self.left, 1 << 20)
        b[:n] = os.urandom(n)
        self.left -= n
        return n

north = Actor("north-wold", "tester", Role.RECORDS_MANAGER)
holding = node.import_document(north, io.BufferedReader(Random()), "big.bin")
_k, recipient = node.keys.age_recipient("south-fen")
sealed = seal_holding(node, north, holding.id, recipient, home / "payload.age")
manifest = sealed.manifest(transfer="t_abcdefghijklmnop", sender="north-wold", recipient="south-fen",
                           created=datetime.now(UTC), age_recipient=recipient,
                           agreement=AgreementRef("DSA-2026-0001", 1, "e" * 64))
with open(sealed.path, "rb") as fh:
    received = open_payload(node, "south-fen", fh, manifest, actor_name="receiver")
assert received.size == size == sealed.plaintext.size
# VmHWM, not ru_maxrss: ru_maxrss survives fork and exec, so it would report the test runner's own size.
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024)
"""


def test_sealing_and_opening_a_large_document_takes_constant_memory(tmp_path: Path) -> None:
    size = 256 * 1024 * 1024
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), str(size)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mib = int(done.stdout.strip().splitlines()[-1])
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
    print(json.dumps({"peak_rss_mib": peak_mib}))


def test_package_carries_a_payload_end_to_end(node: Node, tmp_path: Path) -> None:
    from civicshare.exchange.manifest import parse_manifest, peek_manifest, sign_manifest
    from civicshare.exchange.package import read_package, write_package

    hid = make_dataset(node, tmp_path)
    sealed, manifest = seal_for_south(node, hid, tmp_path / "payload.age")
    key_id, public = node.keys.signing_key(NORTH)
    store = node.keystore(NORTH)
    document = sign_manifest(manifest, key_id, lambda data: store.sign(key_id, data))
    write_package(tmp_path / "share.tar", document, sealed.path)
    got, ciphertext = read_package(tmp_path / "share.tar", tmp_path / "inbox")
    claimed = peek_manifest(got)
    assert claimed.sender == NORTH
    verified, _doc = parse_manifest(got, sender_key=node.keys.signing_key(claimed.sender)[1])
    assert verified == manifest and public == node.keys.signing_key(NORTH)[1]
    holding = open_at_south(node, ciphertext, verified)
    assert holding.rows == 3  # type: ignore[attr-defined]
