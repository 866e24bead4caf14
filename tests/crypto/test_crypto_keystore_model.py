"""A stateful property: two handles on one keystore file (a server and a CLI) always agree with a
simple model of which keys exist, whatever order they create, destroy and reopen in."""

from __future__ import annotations

import tempfile
from pathlib import Path

from crypto_support import PASSPHRASE
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from civicshare.crypto import FileKeystore, KdfParams
from civicshare.errors import Conflict, NotFound

IDS = st.sampled_from(["k1", "k2", "k3", "k4"])
HANDLE = st.integers(min_value=0, max_value=1)


class TwoHandles(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.path = Path(self._dir.name) / "ks.json"
        self.handles = [FileKeystore.create(self.path, PASSPHRASE, kdf=KdfParams.fast_for_tests())]
        self.handles.append(FileKeystore.open(self.path, PASSPHRASE))
        self.model: dict[str, bytes] = {}

    @rule(h=HANDLE, key_id=IDS)
    def create(self, h: int, key_id: str) -> None:
        try:
            public = self.handles[h].create_signing_key(key_id)
        except Conflict:
            assert key_id in self.model
        else:
            assert key_id not in self.model
            self.model[key_id] = public

    @rule(h=HANDLE, key_id=IDS)
    def destroy(self, h: int, key_id: str) -> None:
        try:
            self.handles[h].destroy(key_id)
        except NotFound:
            assert key_id not in self.model
        else:
            del self.model[key_id]

    @rule(h=HANDLE)
    def reopen(self, h: int) -> None:
        self.handles[h] = FileKeystore.open(self.path, PASSPHRASE)

    @invariant()
    def handles_agree_with_model(self) -> None:
        for handle in self.handles:
            assert handle.key_ids() == sorted(self.model)
            for key_id, public in self.model.items():
                assert handle.public_key(key_id) == public

    def teardown(self) -> None:
        self._dir.cleanup()


TwoHandles.TestCase.settings = settings(max_examples=30, stateful_step_count=15, deadline=None)
test_two_handles = TwoHandles.TestCase
