"""Shared fixtures for the crypto tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_support import PASSPHRASE

from civicshare.crypto import FileKeystore, KdfParams


@pytest.fixture
def keystore_path(tmp_path: Path) -> Path:
    return tmp_path / "org" / "keystore.json"


@pytest.fixture
def make_keystore(keystore_path: Path) -> Callable[..., FileKeystore]:
    def make(**kwargs: object) -> FileKeystore:
        kwargs.setdefault("kdf", KdfParams.fast_for_tests())
        return FileKeystore.create(keystore_path, PASSPHRASE, **kwargs)  # type: ignore[arg-type]

    return make
