"""Modules imported on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from civicshare.lazyimport import lazy_module


def test_a_command_starts_without_importing_duckdb_and_loads_it_when_used() -> None:
    code = ("import sys; import civicshare.cli.app; import civicshare.holdings.tabular as t; "
            "print('duckdb' in sys.modules, type(sys.modules['duckdb']).__name__ == '_LazyModule'); "
            "t.duckdb.connect().execute('select 1'); "
            "print(type(sys.modules['duckdb']).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # Registered, but not executed until first used; then an ordinary module.
    assert out == ["True", "True", "module"]


def test_a_module_imported_already_is_returned_as_it_is() -> None:
    import json

    assert lazy_module("json") is json


def test_an_unknown_module_is_refused_at_once() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        lazy_module("no_such_module_for_civicshare")
