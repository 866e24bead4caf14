"""Reading a transfer's parts back in order: from memory without a copy, from the disk checked."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicshare.exchange.handoff import Handoff
from civicshare.exchange.payload import _ByteCount, _TapReader
from civicshare.exchange.staging import StagedPartDamaged, _PartsReader

BUFFER = 64


def _parts(tmp: Path, parts: list[bytes], in_memory: list[bool]) -> tuple[_PartsReader, Handoff, list[bytes]]:
    """A reader over ``parts``: those ``in_memory`` handed over, the rest written as staged files."""
    handoff = Handoff(ahead=len(parts) + 1)
    handoff.begin()
    paths = []
    handed = []
    for n, (data, memory) in enumerate(zip(parts, in_memory, strict=True)):
        path = tmp / f"part-{n}"
        path.unlink(missing_ok=True)
        if memory:
            assert handoff.offer(n, data)
            handed.append(data)
        else:
            path.write_bytes(data)
        paths.append(path)
    hashes = [hashlib.sha256(p).hexdigest() for p in parts]
    return _PartsReader(paths, patience=5, handoff=handoff, hashes=hashes), handoff, handed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6), data=st.data(),
       pieces=st.booleans())
def test_the_parts_come_back_in_order_however_they_are_read(tmp_path: Path, parts: list[bytes],
                                                            data: st.DataObject, pieces: bool) -> None:
    in_memory = data.draw(st.lists(st.booleans(), min_size=len(parts), max_size=len(parts)))
    reader, _handoff, _handed = _parts(tmp_path, parts, in_memory)
    out = bytearray()
    buffer = memoryview(bytearray(BUFFER))
    with reader:
        if pieces:
            for view in reader.pieces(buffer):
                out += view
        else:
            while count := reader.readinto(buffer):
                out += buffer[:count]
    assert bytes(out) == b"".join(parts)


def test_a_part_handed_over_in_memory_is_given_as_it_is_not_copied(tmp_path: Path) -> None:
    parts = [b"a" * 500, b"b" * 200, b"c" * 300]
    reader, _handoff, handed = _parts(tmp_path, parts, [True, False, True])
    buffer = memoryview(bytearray(BUFFER))
    views = list(reader.pieces(buffer))
    # The in-memory parts come whole, as views of the very bytes handed over; the staged one comes
    # through the reused buffer.
    assert views[0].obj is handed[0] and len(views[0]) == 500
    assert views[-1].obj is handed[1] and len(views[-1]) == 300
    assert all(v.obj is buffer.obj for v in views[1:-1]) and sum(map(len, views[1:-1])) == 200
    reader.close()


@pytest.mark.parametrize("pieces", [True, False])
def test_a_staged_part_damaged_on_the_disk_is_caught_when_read_back(tmp_path: Path, pieces: bool) -> None:
    parts = [b"a" * 100, b"b" * 100, b"c" * 100]
    reader, _handoff, _handed = _parts(tmp_path, parts, [True, False, False])
    (tmp_path / "part-1").write_bytes(b"b" * 99 + b"X")  # the right length, not the right bytes
    buffer = memoryview(bytearray(BUFFER))
    with pytest.raises(StagedPartDamaged, match="part 1") as caught:
        if pieces:
            list(reader.pieces(buffer))
        else:
            while reader.readinto(buffer):
                pass
    assert [p.field for p in caught.value.problems] == ["parts.sha256[1]"]
    reader.close()


def test_the_tap_counts_every_piece_it_hands_on(tmp_path: Path) -> None:
    parts = [b"x" * 150, b"y" * 70]
    reader, _handoff, _handed = _parts(tmp_path, parts, [True, False])
    count = _ByteCount()
    tap = _TapReader(reader, count)  # type: ignore[arg-type]
    out = b"".join(bytes(v) for v in tap.pieces(memoryview(bytearray(BUFFER))))
    assert out == b"".join(parts) and count.size == 220
    reader.close()


def test_a_part_still_to_come_is_waited_for(tmp_path: Path) -> None:
    parts = [b"p" * 100, b"q" * 100]
    reader, handoff, _handed = _parts(tmp_path, parts[:1], [True])
    # A reader over two parts whose second is handed over a moment later.
    paths = [tmp_path / "part-0", tmp_path / "part-1"]
    hashes = [hashlib.sha256(p).hexdigest() for p in parts]
    reader = _PartsReader(paths, patience=5, handoff=handoff, hashes=hashes)
    later = threading.Timer(0.2, lambda: handoff.offer(1, parts[1]))
    later.start()
    out = b"".join(bytes(v) for v in reader.pieces(memoryview(bytearray(BUFFER))))
    later.join()
    assert out == b"".join(parts)
