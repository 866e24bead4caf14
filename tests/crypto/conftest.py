"""Shared fixtures for the crypto tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_support import PASSPHRASE

from civicshare.crypto import FileKeystore, KdfParams
from civicshare.crypto.agetool import age_command


@pytest.fixture
def keystore_path(tmp_path: Path) -> Path:
    return tmp_path / "org" / "keystore.json"


@pytest.fixture
def make_keystore(keystore_path: Path) -> Callable[..., FileKeystore]:
    def make(**kwargs: object) -> FileKeystore:
        kwargs.setdefault("kdf", KdfParams.fast_for_tests())
        return FileKeystore.create(keystore_path, PASSPHRASE, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["age-command", "pyrage"])
def age_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the standard age command and again with pyrage (CIVICSHARE_AGE=builtin)."""
    if request.param == "pyrage":
        monkeypatch.setenv("CIVICSHARE_AGE", "builtin")
    else:
        tool = shutil.which("age")
        if tool is None:
            if os.environ.get("CI") == "true":
                pytest.fail("the age command is missing; `make test` installs it")
            pytest.skip("the age command is not installed (make tools)")
        monkeypatch.setenv("CIVICSHARE_AGE", tool)
    assert (age_command() is None) == (request.param == "pyrage")
    return str(request.param)
