"""The node home: where configuration, database, keystores and encrypted blobs live."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from civicshare.errors import ConfigError, UsageError

CONFIG_NAME = "civicshare.toml"
CONFIG_VERSION = 1
ORG_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


def check_org_id(org_id: str) -> str:
    # fullmatch: with match and $, a trailing newline would slip through.
    if not ORG_ID_RE.fullmatch(org_id):
        raise UsageError(
            f"Organisation id {org_id!r} is not valid: use 2 to 63 lower-case letters, digits and hyphens, "
            "such as 'north-wold-dc'."
        )
    return org_id


@dataclass(frozen=True)
class Layout:
    """Paths inside one node home. Nothing here holds personal data in plaintext."""

    home: Path

    @property
    def config(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def default_sqlite(self) -> Path:
        return self.home / "civicshare.db"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def work_dir(self) -> Path:
        """Private scratch space for pipes; never holds plaintext files."""
        return self.home / "tmp"

    def keystore(self, org_id: str) -> Path:
        return self.keys_dir / f"{org_id}.keystore"

    def blob_dir(self, org_id: str) -> Path:
        return self.blobs_dir / org_id

    def outbox_dir(self, org_id: str) -> Path:
        """Sealed payloads waiting to be delivered: ciphertext only, sealed to the recipient."""
        return self.home / "outbox" / org_id

    def staging_dir(self, org_id: str) -> Path:
        """Parts of arriving transfers: ciphertext only, until the transfer is opened and stored."""
        return self.home / "staging" / org_id

    @property
    def schemas_dir(self) -> Path:
        """The organisations' own schemas: Table Schema JSON files, <name>.json."""
        return self.home / "schemas"

    @property
    def directory_dir(self) -> Path:
        """The workspace of a federation directory this node operates (if any)."""
        return self.home / "directory"

    @property
    def delivery_bell(self) -> Path:
        """The named pipe a new share rings to wake the delivery worker (civicshare.doorbell)."""
        return self.home / "run" / "delivery.bell"

    def make_dirs(self) -> None:
        for path in (self.home, self.keys_dir, self.blobs_dir, self.work_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)


@dataclass(frozen=True)
class NodeConfig:
    db_url: str
    url: str | None = None
    version: int = CONFIG_VERSION

    def dumps(self) -> str:
        # JSON string quoting is valid TOML basic-string quoting.
        lines = ["# civicshare node configuration", f"version = {self.version}", f"db_url = {json.dumps(self.db_url)}"]
        if self.url:
            lines.append(f"url = {json.dumps(self.url)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        if not path.exists():
            raise ConfigError(
                f"No civicshare node home at {path.parent}: run 'civicshare init' first, "
                "or point --home / CIVICSHARE_HOME at an existing home."
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"The node configuration {path} cannot be read: {exc}") from None
        if data.get("version") != CONFIG_VERSION or not isinstance(data.get("db_url"), str):
            raise ConfigError(
                f"The node configuration {path} is not a version {CONFIG_VERSION} civicshare configuration."
            )
        return cls(db_url=data["db_url"], url=data.get("url"))


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
