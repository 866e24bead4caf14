"""Run the real ``civicshare`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSPHRASE


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, home: Path, tmpdir: Path, passphrase: str = PASSPHRASE) -> None:
        self.home = home
        self.env = {**os.environ, "CIVICSHARE_HOME": str(home), "CIVICSHARE_PASSPHRASE": passphrase,
                    "TMPDIR": str(tmpdir), "COLUMNS": "200", "NO_COLOR": "1"}
        tmpdir.mkdir(parents=True, exist_ok=True)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "civicshare", *args], env={**self.env, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        proc = subprocess.run([sys.executable, "-m", "civicshare", *args], env={**self.env, **env},
                              capture_output=True, text=True, input=input, timeout=120,
                              stdin=None if input is not None else subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home", tmp_path / "tmp")


@pytest.fixture
def initialised(cli: Cli, db_url: str | None) -> Cli:
    args = ["init", "--org", "north-wold", "--name", "North Wold District Council"]
    if db_url:
        args += ["--db", db_url]
    result = cli(*args)
    assert result.code == 0, result.err
    return cli
