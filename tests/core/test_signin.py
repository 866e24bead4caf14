"""Web sign-in core: passwords, lock-out, TOTP and sessions, on an injected clock, on both backends."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select, update

from civicshare.access import Actor, Role
from civicshare.audit import AuditEntry
from civicshare.crypto import KdfParams
from civicshare.db import tables as t
from civicshare.errors import AccountLocked, AuthenticationFailed, IntegrityError, PermissionDenied, UsageError
from civicshare.node import Node
from civicshare.signin import _totp
from tests.conftest import PASSPHRASE

NORTH, SOUTH = "north-wold", "south-fen"
PW = "a long enough password"
ADMIN = Actor.operator(NORTH, "ops")


@dataclass
class Clock:
    now: datetime = datetime(2026, 4, 1, 9, 0, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def node(tmp_path: Path, db_url: str | None, clock: Clock) -> Iterator[Node]:
    n = Node.init(tmp_path / "home", NORTH, "North Wold District Council", db_url=db_url, passphrase=PASSPHRASE,
                  kdf=KdfParams.fast_for_tests(), clock=clock)
    n.add_organisation(SOUTH, "South Fen Borough Council")
    n.add_user(NORTH, "sam", Role.CASEWORKER, PW)
    n.add_user(NORTH, "pat", Role.CASEWORKER)  # API token only, no web password
    n.add_user(SOUTH, "sam", Role.ADMIN, "south fen's own password")
    yield n
    n.close()


def log(node: Node, org: str = NORTH, *actions: str) -> list[AuditEntry]:
    return [e for e in node.audit.entries(org) if not actions or e.action in actions]


def code_at(secret_b32: str, moment: datetime) -> str:
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    return TOTP(key, 6, SHA1(), 30).generate(moment.timestamp()).decode("ascii")  # noqa: S303


def user_row(node: Node, org: str, name: str):  # type: ignore[no-untyped-def]
    with node.db.engine.connect() as conn:
        return conn.execute(select(t.users).where(t.users.c.org_id == org, t.users.c.name == name)).one()


# Passwords and lock-out ------------------------------------------------------------------------

def test_password_signs_in_and_every_failure_is_audited(node: Node) -> None:
    attempt = node.signin.password(NORTH, "sam", PW)
    assert attempt.actor == Actor(NORTH, "sam", Role.CASEWORKER) and not attempt.totp_required
    for org, name, password in ((NORTH, "sam", "wrong password!!"), (NORTH, "nobody", PW), (NORTH, "pat", PW),
                                (NORTH, "sam", "south fen's own password")):
        with pytest.raises(AuthenticationFailed, match="The user name or password is wrong"):
            node.signin.password(org, name, password)
    assert node.signin.password(SOUTH, "sam", "south fen's own password").actor.role is Role.ADMIN
    entries = log(node, NORTH, "login", "login.failed")
    assert [(e.action, e.outcome, e.actor, e.details.get("reason")) for e in entries] == [
        ("login", "ok", "sam", None), ("login.failed", "refused", "sam", "wrong password"),
        ("login.failed", "refused", "nobody", "unknown user"),
        ("login.failed", "refused", "pat", "no web password set"), ("login.failed", "refused", "sam", "wrong password")]
    assert {e.details["method"] for e in entries} == {"password"}
    assert [e.action for e in log(node, SOUTH, "login", "login.failed")] == ["login"]


def test_five_failures_in_a_row_lock_the_account_for_fifteen_minutes(node: Node, clock: Clock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed) as caught:
            node.signin.password(NORTH, "sam", "not the password")
        assert not isinstance(caught.value, AccountLocked)
    with pytest.raises(AccountLocked) as locked:
        node.signin.password(NORTH, "sam", "not the password")
    assert locked.value.message == ("This account is locked until 09:15 UTC after repeated failed sign-ins; "
                                    "ask an administrator to unlock it, or wait.")
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(AccountLocked, match="locked until 09:15 UTC"):
        node.signin.password(NORTH, "sam", PW)  # the right password, refused while locked
    [lock] = log(node, NORTH, "login.locked")
    assert lock.details == {"until": "2026-04-01T09:15:10Z", "failures": 5}
    assert log(node, NORTH, "login.failed")[-1].details == {"method": "password", "reason": "account locked"}
    clock.advance(seconds=1)
    assert node.signin.password(NORTH, "sam", PW).actor.name == "sam"
    # Another user, and the same name in another organisation, were never locked.
    assert node.signin.password(SOUTH, "sam", "south fen's own password")


def test_a_success_resets_the_count_and_a_lock_ends_with_a_fresh_count(node: Node, clock: Clock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            node.signin.password(NORTH, "sam", "not the password")
    node.signin.password(NORTH, "sam", PW)
    assert user_row(node, NORTH, "sam").failed_logins == 0
    for _ in range(4):
        with pytest.raises(AuthenticationFailed) as caught:
            node.signin.password(NORTH, "sam", "not the password")
        assert not isinstance(caught.value, AccountLocked)
    with pytest.raises(AccountLocked):
        node.signin.password(NORTH, "sam", "not the password")
    clock.advance(minutes=15)
    with pytest.raises(AuthenticationFailed) as after:
        node.signin.password(NORTH, "sam", "not the password")
    assert not isinstance(after.value, AccountLocked) and user_row(node, NORTH, "sam").failed_logins == 1


def test_an_administrator_unlocks_and_others_may_not(node: Node, clock: Clock) -> None:
    assert node.signin.unlock(ADMIN, "sam") is None
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            node.signin.password(NORTH, "sam", "not the password")
    with pytest.raises(PermissionDenied, match="may not unlock accounts"):
        node.signin.unlock(Actor(NORTH, "carer", Role.CASEWORKER), "sam")
    with pytest.raises(AccountLocked):
        node.signin.password(NORTH, "sam", PW)
    assert node.signin.status(NORTH, "sam")["locked_until"] == "2026-04-01T09:15:10Z"
    until = node.signin.unlock(ADMIN, "sam")
    assert until == datetime(2026, 4, 1, 9, 15, 10, tzinfo=UTC)
    assert node.signin.status(NORTH, "sam") == {"password": True, "totp": False, "locked_until": None,
                                                "failed_logins": 0}
    assert node.signin.password(NORTH, "sam", PW)
    unlocks = log(node, NORTH, "user.unlock")
    assert [(e.actor, e.outcome, e.details.get("was_locked")) for e in unlocks] == [
        ("cli:ops", "ok", False), ("carer", "refused", None), ("cli:ops", "ok", True)]


def test_set_password_replaces_it_ends_sessions_and_lifts_the_lock(node: Node) -> None:
    cookie, _ = node.signin.start(node.signin.password(NORTH, "sam", PW).actor)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            node.signin.password(NORTH, "sam", "not the password")
    with pytest.raises(UsageError, match="at least 12 characters"):
        node.signin.set_password(ADMIN, "sam", "short")
    with pytest.raises(PermissionDenied):
        node.signin.set_password(Actor(NORTH, "sam", Role.CASEWORKER), "pat", "a brand new password")
    node.signin.set_password(ADMIN, "sam", "a brand new password")
    node.signin.set_password(ADMIN, "pat", "pat's first password")
    with pytest.raises(AuthenticationFailed, match="not signed in"):
        node.signin.session(cookie)
    with pytest.raises(AuthenticationFailed):
        node.signin.password(NORTH, "sam", PW)
    assert node.signin.password(NORTH, "sam", "a brand new password")
    assert node.signin.password(NORTH, "pat", "pat's first password")
    changes = [(e.outcome, e.details.get("replaced"), e.details.get("sessions_ended"))
               for e in log(node, NORTH, "user.password")]
    assert changes == [("refused", None, None), ("refused", None, None), ("ok", True, 1), ("ok", False, 0)]
    assert "a brand new password" not in str(log(node, NORTH))


# Sessions --------------------------------------------------------------------------------------

def test_a_session_stores_only_a_hash_of_the_cookie_and_ends_on_sign_out(node: Node) -> None:
    cookie, session = node.signin.start(node.signin.password(NORTH, "sam", PW).actor)
    other, second = node.signin.start(Actor(NORTH, "sam", Role.CASEWORKER))
    assert len(cookie) >= 43 and cookie != other and session.csrf_token != second.csrf_token
    assert node.signin.session(cookie) == session
    assert (session.org_id, session.user_name, session.totp_pending) == (NORTH, "sam", False)
    with node.db.engine.connect() as conn:
        stored = conn.execute(select(t.web_sessions.c.id_hash)).scalars().all()
    assert hashlib.sha256(cookie.encode()).hexdigest() in stored and cookie not in stored
    for bad in ("", "x" * 43, hashlib.sha256(cookie.encode()).hexdigest()):
        with pytest.raises(AuthenticationFailed):
            node.signin.session(bad)
    node.signin.end(cookie)
    node.signin.end(cookie)  # twice, or with an unknown cookie, is harmless
    with pytest.raises(AuthenticationFailed, match="sign in again"):
        node.signin.session(cookie)
    assert node.signin.session(other) == second
    assert [(e.action, e.actor) for e in log(node, NORTH, "logout")] == [("logout", "sam")]


def test_idle_sessions_expire_after_thirty_minutes(node: Node, clock: Clock) -> None:
    cookie, _ = node.signin.start(Actor(NORTH, "sam", Role.CASEWORKER))
    idle, _ = node.signin.start(Actor(NORTH, "sam", Role.CASEWORKER))
    clock.advance(seconds=30)
    assert node.signin.session(cookie).last_seen_at == datetime(2026, 4, 1, 9, 0, 10, tzinfo=UTC)  # not yet
    clock.advance(minutes=29, seconds=29)
    assert node.signin.session(cookie).last_seen_at == clock.now  # touched
    clock.advance(seconds=1)
    with pytest.raises(AuthenticationFailed, match="expired after 30 minutes without activity"):
        node.signin.session(idle)
    clock.advance(minutes=29, seconds=58)
    assert node.signin.session(cookie)
    clock.advance(minutes=30)
    with pytest.raises(AuthenticationFailed, match="without activity"):
        node.signin.session(cookie)
    with node.db.engine.connect() as conn:
        assert conn.execute(select(t.web_sessions)).all() == []  # expired sessions are deleted


def test_sessions_end_after_twelve_hours_however_busy(node: Node, clock: Clock) -> None:
    cookie, session = node.signin.start(Actor(NORTH, "sam", Role.CASEWORKER))
    assert session.expires_at - session.created_at == timedelta(hours=12)
    for _ in range(12 * 3 - 1):
        clock.advance(minutes=20)
        assert node.signin.session(cookie)
    clock.advance(minutes=19, seconds=59)
    assert node.signin.session(cookie)
    clock.advance(seconds=1)
    with pytest.raises(AuthenticationFailed, match="at the end of its time limit"):
        node.signin.session(cookie)


def test_a_session_carries_the_users_current_role_and_org(node: Node) -> None:
    cookie, _ = node.signin.start(node.signin.password(SOUTH, "sam", "south fen's own password").actor)
    assert node.signin.session(cookie).actor == Actor(SOUTH, "sam", Role.ADMIN)
    with node.db.engine.begin() as conn:
        conn.execute(update(t.users).where(t.users.c.org_id == SOUTH).values(role=Role.DPO.value))
    assert node.signin.session(cookie).actor == Actor(SOUTH, "sam", Role.DPO)
    with pytest.raises(AuthenticationFailed):
        node.signin.start(Actor(NORTH, "nobody", Role.ADMIN))


# TOTP ------------------------------------------------------------------------------------------

def test_totp_parameters_match_rfc_6238() -> None:
    # RFC 6238 appendix B, SHA-1 secret, cut to the 6 digits authenticator apps show.
    secret = b"12345678901234567890"
    assert [_totp(secret).generate(s) for s in (59, 1111111109, 1234567890, 20000000000)] == [
        b"287082", b"081804", b"005924", b"353130"]


def test_enrolment_gives_a_uri_and_stores_the_secret_wrapped(node: Node) -> None:
    secret, uri = node.signin.enrol_totp(ADMIN, "sam")
    parsed = urlparse(uri)
    query = parse_qs(parsed.query)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert query == {"secret": [secret], "digits": ["6"], "period": ["30"], "algorithm": ["SHA1"],
                     "issuer": ["North Wold District Council"]}
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    stored = user_row(node, NORTH, "sam").totp_secret
    kek = next(k.id for k in node.keys.list(NORTH) if k.purpose == "kek" and k.state == "active")
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    assert stored.startswith(kek + ".") and secret not in stored and raw not in base64.b64decode(stored[len(kek) + 1:])
    assert node.signin.status(NORTH, "sam")["totp"] is True
    [entry] = log(node, NORTH, "user.totp")
    assert secret not in str(entry.details) and entry.details == {"name": "sam", "enrolled": True, "replaced": False}
    with pytest.raises(PermissionDenied):
        node.signin.enrol_totp(Actor(NORTH, "sam", Role.CASEWORKER), "pat")
    assert node.signin.enrol_totp(Actor(NORTH, "sam", Role.CASEWORKER), "sam")[0] != secret  # one's own: allowed


def _pending(node: Node) -> str:
    attempt = node.signin.password(NORTH, "sam", PW)
    assert attempt.totp_required
    cookie, session = node.signin.start(attempt.actor)
    assert session.totp_pending and session.expires_at - session.created_at == timedelta(minutes=5)
    return cookie


def test_totp_is_a_second_step_with_a_new_cookie(node: Node, clock: Clock) -> None:
    secret, _ = node.signin.enrol_totp(ADMIN, "sam")
    cookie = _pending(node)
    with pytest.raises(AuthenticationFailed, match="security code"):
        node.signin.session(cookie)  # half signed in is not signed in
    assert node.signin.pending(cookie).actor.name == "sam"
    assert [e.action for e in log(node, NORTH, "login")] == []  # the password alone is not a sign-in
    full, session = node.signin.totp(cookie, code_at(secret, clock.now)[:3] + " " + code_at(secret, clock.now)[3:])
    assert full != cookie and not session.totp_pending and node.signin.session(full) == session
    with pytest.raises(AuthenticationFailed):
        node.signin.pending(cookie)
    with pytest.raises(AuthenticationFailed, match="no sign-in waiting"):
        node.signin.pending(full)
    [entry] = log(node, NORTH, "login")
    assert entry.details == {"method": "totp"}


def test_totp_accepts_one_step_either_side_and_each_step_once(node: Node, clock: Clock) -> None:
    secret, _ = node.signin.enrol_totp(ADMIN, "sam")
    for offset, ok in ((-60, False), (60, False), (-30, True), (0, True), (30, True)):
        cookie = _pending(node)
        code = code_at(secret, clock.now + timedelta(seconds=offset))
        if ok:
            node.signin.totp(cookie, code)
        else:
            with pytest.raises(AuthenticationFailed):
                node.signin.totp(cookie, code)
        if offset == -30:
            # The same code again (a replay) is refused, and so is the older step after a newer one.
            with pytest.raises(AuthenticationFailed):
                node.signin.totp(_pending(node), code)
    with pytest.raises(AuthenticationFailed):
        node.signin.totp(_pending(node), code_at(secret, clock.now))  # step +1 was used: now is too old
    clock.advance(seconds=60)
    assert node.signin.totp(_pending(node), code_at(secret, clock.now))
    reasons = [e.details["reason"] for e in log(node, NORTH, "login.failed")]
    assert reasons == ["wrong code", "wrong code", "code already used", "code already used"]
    assert user_row(node, NORTH, "sam").failed_logins == 0


def test_wrong_codes_count_toward_lock_out_and_a_password_does_not_reset_them(node: Node, clock: Clock) -> None:
    secret, _ = node.signin.enrol_totp(ADMIN, "sam")
    cookie = _pending(node)
    for bad in ("000000", "12345", "abcdef"):
        with pytest.raises(AuthenticationFailed):
            node.signin.totp(cookie, bad)
    cookie = _pending(node)  # the right password again
    with pytest.raises(AuthenticationFailed):
        node.signin.totp(cookie, "999999")
    with pytest.raises(AccountLocked, match="locked until 09:15 UTC"):
        node.signin.totp(cookie, "999998")
    with pytest.raises(AuthenticationFailed):
        node.signin.pending(cookie)  # the half-finished sign-in is gone
    with pytest.raises(AccountLocked):
        node.signin.password(NORTH, "sam", PW)
    clock.advance(minutes=15)
    assert node.signin.totp(_pending(node), code_at(secret, clock.now))


def test_a_pending_sign_in_lasts_five_minutes(node: Node, clock: Clock) -> None:
    secret, _ = node.signin.enrol_totp(ADMIN, "sam")
    cookie = _pending(node)
    clock.advance(minutes=5)
    with pytest.raises(AuthenticationFailed, match="expired"):
        node.signin.totp(cookie, code_at(secret, clock.now))


def test_totp_survives_kek_rotation_and_cannot_be_moved_to_another_user(node: Node, clock: Clock) -> None:
    secret, _ = node.signin.enrol_totp(ADMIN, "sam")
    node.rotate_kek(ADMIN)
    assert node.signin.totp(_pending(node), code_at(secret, clock.now))
    # Copying sam's wrapped secret to pat's row does not give pat sam's codes: the wrap names the user.
    node.signin.set_password(ADMIN, "pat", "pat's first password")
    node.signin.enrol_totp(ADMIN, "pat")
    with node.db.engine.begin() as conn:
        conn.execute(update(t.users).where(t.users.c.org_id == NORTH, t.users.c.name == "pat")
                     .values(totp_secret=user_row(node, NORTH, "sam").totp_secret))
    cookie, _ = node.signin.start(node.signin.password(NORTH, "pat", "pat's first password").actor)
    clock.advance(seconds=30)
    with pytest.raises(IntegrityError):
        node.signin.totp(cookie, code_at(secret, clock.now))


def test_removing_totp_signs_in_with_the_password_alone(node: Node) -> None:
    assert node.signin.remove_totp(ADMIN, "sam") is False
    node.signin.enrol_totp(ADMIN, "sam")
    with pytest.raises(PermissionDenied):
        node.signin.remove_totp(Actor(NORTH, "sam", Role.CASEWORKER), "sam")
    assert node.signin.remove_totp(ADMIN, "sam") is True
    assert not node.signin.password(NORTH, "sam", PW).totp_required
    cookie, session = node.signin.start(Actor(NORTH, "sam", Role.CASEWORKER))
    assert not session.totp_pending and node.signin.session(cookie)
    assert [(e.outcome, e.details["enrolled"]) for e in log(node, NORTH, "user.totp")] == [
        ("ok", False), ("ok", True), ("refused", False), ("ok", False)]
