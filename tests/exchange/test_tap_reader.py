"""The recipient's tap: every byte of ciphertext handed on is measured, however it is read."""

from __future__ import annotations

import hashlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.exchange.payload import _TapReader
from civicshare.exchange.tally import StreamHash


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=5000), size=st.integers(1, 700), in_pieces=st.booleans())
def test_what_is_handed_on_is_what_is_measured(data: bytes, size: int, in_pieces: bool) -> None:
    tally = StreamHash()
    tap = _TapReader(io.BufferedReader(io.BytesIO(data), buffer_size=256), tally)
    out = bytearray()
    if in_pieces:  # as the age feeder reads it, through one reused buffer
        buffer = memoryview(bytearray(size))
        for piece in tap.pieces(buffer):
            assert len(piece) <= size
            out += piece
    else:
        while chunk := tap.read(size):
            out += chunk
    assert bytes(out) == data
    assert tally.digest().size == len(data)
    assert tally.digest().sha256 == hashlib.sha256(data).hexdigest()
