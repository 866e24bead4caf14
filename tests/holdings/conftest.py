"""Fixtures for the tabular engine tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from civicshare.errors import InvalidInput
from civicshare.holdings.tabular import TableInfo, import_table


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """Write a source file into the test's inbox folder."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def _write(name: str, content: bytes | str) -> Path:
        path = inbox / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return _write


@pytest.fixture
def do_import(store: Path, work_dir: Path, key: bytes) -> Callable[..., TableInfo]:
    def _import(source: Path, **kwargs: object) -> TableInfo:
        return import_table(source, store / "table.parquet", key, work_dir=work_dir, **kwargs)  # type: ignore[arg-type]

    return _import


@pytest.fixture
def refused(store: Path, work_dir: Path, key: bytes) -> Callable[..., InvalidInput]:
    """Import that must be refused; checks nothing was written anywhere and returns the error."""

    def _refused(source: Path, **kwargs: object) -> InvalidInput:
        with pytest.raises(InvalidInput) as caught:
            import_table(source, store / "table.parquet", key, work_dir=work_dir, **kwargs)  # type: ignore[arg-type]
        assert list(store.iterdir()) == []
        assert list(work_dir.iterdir()) == []
        return caught.value

    return _refused
