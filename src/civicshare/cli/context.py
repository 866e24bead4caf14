"""What every command shares: the node home, the passphrase, the acting operator and output helpers."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from civicshare.access import Actor
from civicshare.crypto import check_new_passphrase, passphrase_from_env_or_prompt
from civicshare.errors import Conflict, UsageError
from civicshare.node import Node

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


@dataclass
class State:
    home: Path | None = None
    nodes: list[Node] = field(default_factory=list)

    def home_path(self) -> Path:
        if self.home is None:
            raise UsageError("Say which node home to use: --home DIR, or set CIVICSHARE_HOME.")
        return self.home

    @contextmanager
    def node(self) -> Iterator[Node]:
        node = Node.open(self.home_path(), passphrase=ask_passphrase)
        try:
            yield node
        finally:
            node.close()

    def operator(self, node: Node, org: str | None) -> Actor:
        return Actor.operator(node.resolve_org(org), _os_user())

    @staticmethod
    def operator_name() -> str:
        """How the audit log names whoever runs a command at this node's shell."""
        return Actor.operator("-", _os_user()).name


STATE = State()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a command for
        return "unknown"


def ask_passphrase() -> str:
    """The keystore passphrase from CIVICSHARE_PASSPHRASE, or asked for at a terminal."""
    return passphrase_from_env_or_prompt()


def new_passphrase() -> str:
    """A passphrase for a new keystore: asked twice at a terminal, and long enough."""
    return check_new_passphrase(passphrase_from_env_or_prompt(confirm=True))


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False), indent=2)


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


def size_words(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def write_new_file(path: Path, data: str | bytes, *, mode: int = 0o600) -> None:
    """Write a new file the command was asked for (``--out`` and the like); never replace one.

    ``mode`` 0600 unless the contents are meant to be handed around (a card, a directory: 0644). A
    failed write leaves no part-written file behind.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise Conflict(f"{path} already exists; choose another file name.") from None
    except OSError as exc:
        raise UsageError(f"Cannot create {path}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # the umask may have narrowed it
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
