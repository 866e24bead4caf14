"""Helpers shared by the crypto tests (a uniquely named module, so it never clashes with another
folder's conftest)."""

from __future__ import annotations

PASSPHRASE = "correct horse battery staple"


class RecordingRng:
    """A deterministic random source that remembers everything it handed out."""

    def __init__(self, seed: int = 0) -> None:
        self._counter = seed
        self.outputs: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            self._counter += 1
            out += self._counter.to_bytes(8, "big") * 4
        data = bytes(out[:n])
        self.outputs.append(data)
        return data
