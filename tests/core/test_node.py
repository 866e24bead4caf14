"""The node home: init, organisations, keys and the passphrase, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from civicshare.access import Role
from civicshare.config import Layout
from civicshare.crypto import KdfParams
from civicshare.db import tables as t
from civicshare.errors import Conflict, KeystoreLocked, NotFound, PermissionDenied, UsageError
from civicshare.node import Node
from tests.conftest import PASSPHRASE, actor


def test_init_creates_home_database_keys_and_config(node: Node, home: Path) -> None:
    layout = Layout(home.resolve())
    assert layout.config.exists()
    assert layout.keystore("north-wold").exists() and layout.keystore("south-fen").exists()
    assert (layout.config.stat().st_mode & 0o777) == 0o600
    assert [o.id for o in node.organisations()] == ["north-wold", "south-fen"]
    register = node.key_register(actor("north-wold", Role.ADMIN))
    purposes = sorted(k.purpose for k in register)
    assert purposes == ["kek", "receiving", "signing"]
    for key in register:
        assert key.custody == "file"
        assert key.location.startswith(str(layout.keystore("north-wold")))
        assert key.state == "active" and key.created_at is not None
    algorithms = {k.purpose: k.algorithm for k in register}
    assert algorithms["signing"] == "Ed25519"
    assert algorithms["receiving"].startswith("X25519")
    assert next(k for k in register if k.purpose == "receiving").public.startswith("age1")


def test_reopen_with_right_passphrase_and_refuse_wrong_one(node: Node, home: Path) -> None:
    url = node.config.db_url
    node.close()
    with Node.open(home, passphrase="not the passphrase") as wrong:
        # Listings need no key; anything that needs the keystore refuses clearly.
        assert [o.id for o in wrong.organisations()] == ["north-wold", "south-fen"]
        with pytest.raises(KeystoreLocked, match="passphrase is wrong"):
            wrong.rotate_kek(actor("north-wold", Role.ADMIN))
    with Node.open(home, passphrase=PASSPHRASE) as right:
        assert right.config.db_url == url
        right.rotate_kek(actor("north-wold", Role.ADMIN))


def test_no_passphrase_is_a_clear_refusal(node: Node, home: Path) -> None:
    node.close()
    with Node.open(home, passphrase=None) as locked, pytest.raises(KeystoreLocked, match="CIVICSHARE_PASSPHRASE"):
        locked.keystore("north-wold")


def test_init_refuses_existing_home_and_bad_ids(node: Node, home: Path, tmp_path: Path) -> None:
    with pytest.raises(Conflict):
        Node.init(home, "other", "Other", passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests())
    with pytest.raises(UsageError, match="not valid"):
        Node.init(tmp_path / "h2", "Bad Id!", "Bad", passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests())
    assert not (tmp_path / "h2").exists(), "a failed init leaves nothing behind"
    with pytest.raises(Conflict):
        node.add_organisation("south-fen", "Again")


def test_open_missing_home_names_it(tmp_path: Path) -> None:
    from civicshare.errors import ConfigError

    with pytest.raises(ConfigError, match="civicshare init"):
        Node.open(tmp_path / "nowhere")


def test_resolve_org_requires_choice_when_several(node: Node) -> None:
    with pytest.raises(UsageError, match="--org"):
        node.resolve_org(None)
    assert node.resolve_org("south-fen") == "south-fen"
    with pytest.raises(NotFound):
        node.resolve_org("east-marsh")


def test_users_and_tokens(node: Node) -> None:
    user, token = node.add_user("north-wold", "amira", Role.CASEWORKER)
    assert token.startswith("cs1.")
    who = node.authenticate(token)
    assert (who.org_id, who.name, who.role) == ("north-wold", "amira", Role.CASEWORKER)
    with node.db.engine.connect() as conn:
        stored = conn.execute(select(t.tokens.c.secret_hash)).scalars().all()
    assert all(token.split(".")[2] not in h for h in stored), "only a hash of the secret is stored"
    with pytest.raises(Conflict):
        node.add_user("north-wold", "amira", Role.ADMIN)
    from civicshare.errors import AuthenticationFailed

    for bad in ("", "cs1.x.y", token[:-1] + ("A" if token[-1] != "A" else "B"), "Bearer " + token):
        with pytest.raises(AuthenticationFailed):
            node.authenticate(bad)


def test_roles_limit_key_operations(node: Node) -> None:
    with pytest.raises(PermissionDenied, match="caseworker"):
        node.rotate_kek(actor("north-wold", Role.CASEWORKER))
    with pytest.raises(PermissionDenied):
        node.key_register(actor("north-wold", Role.CASEWORKER))
    with pytest.raises(PermissionDenied):
        node.rotate_kek(actor("north-wold", Role.DPO))
