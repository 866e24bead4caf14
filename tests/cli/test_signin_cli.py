"""``user password``, ``user totp`` and ``user unlock``, run as the real command, on both backends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from civicshare.errors import AccountLocked, AuthenticationFailed
from civicshare.node import Node
from tests.cli.conftest import Cli
from tests.conftest import PASSPHRASE


def opened(cli: Cli) -> Node:
    return Node.open(cli.home, passphrase=PASSPHRASE)


def test_password_totp_and_unlock_commands(initialised: Cli) -> None:
    added = initialised("user", "add", "sam", "--role", "caseworker", "--password-stdin",
                        input="the first password\n")
    assert added.code == 0, added.err
    assert initialised("user", "add", "pat", "--role", "dpo").code == 0
    listed = {u["name"]: u for u in initialised("user", "list", "--json").json()}
    assert (listed["sam"]["password"], listed["sam"]["totp"], listed["pat"]["password"]) == (True, False, False)

    short = initialised("user", "password", "sam", "--password-stdin", input="short\n")
    assert short.code == 2 and "at least 12 characters" in short.err and "Traceback" not in short.err
    nobody = initialised("user", "password", "nobody", "--password-stdin", input="a long password!\n")
    assert nobody.code == 1 and "No user called 'nobody'" in nobody.err
    no_stdin = initialised("user", "password", "pat")
    assert no_stdin.code == 2 and "--password-stdin" in no_stdin.err
    changed = initialised("user", "password", "pat", "--password-stdin", input="pat's new password\n")
    assert changed.code == 0, changed.err
    assert "pat's new password" not in changed.out + changed.err

    with opened(initialised) as node:
        assert node.signin.password("north-wold", "pat", "pat's new password").actor.name == "pat"
        for _ in range(5):
            with pytest.raises(AuthenticationFailed):
                node.signin.password("north-wold", "sam", "not sam's password")
        with pytest.raises(AccountLocked):
            node.signin.password("north-wold", "sam", "the first password")
    locked = {u["name"]: u for u in initialised("user", "list", "--json").json()}["sam"]["locked_until"]
    assert locked is not None and datetime.fromisoformat(locked) > datetime.now(UTC)
    assert "locked until" in initialised("user", "list").out
    unlocked = initialised("user", "unlock", "sam")
    assert unlocked.code == 0 and "Unlocked sam" in unlocked.err
    assert "was not locked" in initialised("user", "unlock", "sam").err

    enrolled = initialised("user", "totp", "sam")
    assert enrolled.code == 0, enrolled.err
    secret, uri = enrolled.out.split()
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "shown only once" in enrolled.err
    as_json = initialised("user", "totp", "sam", "--json").json()  # replaces the secret
    assert as_json["secret"] != secret and as_json["uri"].startswith("otpauth://totp/")
    key = base64.b32decode(as_json["secret"] + "=" * (-len(as_json["secret"]) % 8))
    with opened(initialised) as node:
        attempt = node.signin.password("north-wold", "sam", "the first password")
        assert attempt.totp_required
        cookie, _ = node.signin.start(attempt.actor)
        code = TOTP(key, 6, SHA1(), 30).generate(datetime.now(UTC).timestamp()).decode()  # noqa: S303
        full, session = node.signin.totp(cookie, code)
        assert node.signin.session(full) == session
    removed = initialised("user", "totp", "sam", "--remove")
    assert removed.code == 0 and "no longer asked" in removed.err
    with opened(initialised) as node:
        assert not node.signin.password("north-wold", "sam", "the first password").totp_required
        actions = [(e.action, e.actor, e.outcome) for e in node.audit.entries("north-wold")
                   if e.action in {"user.password", "user.totp", "user.unlock", "login.locked"}]
    op = actions[0][1]
    assert op.startswith("cli:")
    assert actions == [("user.password", op, "refused"), ("user.password", op, "refused"),
                       ("user.password", op, "ok"), ("login.locked", "sam", "ok"), ("user.unlock", op, "ok"),
                       ("user.unlock", op, "ok"), ("user.totp", op, "ok"), ("user.totp", op, "ok"),
                       ("user.totp", op, "ok")]
