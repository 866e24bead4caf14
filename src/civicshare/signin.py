"""Web sign-in: passwords with lock-out, an optional TOTP second factor, and browser sessions.

Only the SHA-256 of a session's cookie secret is stored, and the TOTP secret is stored wrapped by the
organisation's KEK. Time and randomness come from the node, so expiry and lock-out are testable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import Connection, delete, select, update

from civicshare.access import Actor, Permission, Role
from civicshare.audit.entry import REFUSED
from civicshare.clock import iso, utc
from civicshare.db import tables as t
from civicshare.errors import AccountLocked, AuthenticationFailed, NotFound, UsageError
from civicshare.keys import KEK, totp_aad
from civicshare.users import _dummy_hash, hash_password, verify_password

if TYPE_CHECKING:
    from civicshare.node import Node

MAX_FAILURES = 5  # failed sign-ins in a row before the account locks
LOCK_FOR = timedelta(minutes=15)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
PENDING_TIMEOUT = timedelta(minutes=5)  # between the password and the TOTP code
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
TOTP_STEP, TOTP_DIGITS, TOTP_SECRET_BYTES = 30, 6, 20
MIN_PASSWORD = 12
_WRONG = "The user name or password is wrong."


@dataclass(frozen=True)
class Attempt:
    """A password that matched. With ``totp_required`` the sign-in is only half done: start a session
    (it starts as pending) and finish it with ``SignIn.totp``."""

    actor: Actor
    user_id: str
    totp_required: bool


@dataclass(frozen=True)
class Session:
    actor: Actor
    user_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    totp_pending: bool

    @property
    def org_id(self) -> str:
        return self.actor.org_id

    @property
    def user_name(self) -> str:
        return self.actor.name


def _hash(cookie_secret: str) -> str:
    return hashlib.sha256(cookie_secret.encode("utf-8")).hexdigest()


def _totp(secret: bytes) -> TOTP:
    # SHA-1 is what RFC 6238 and every authenticator app use; HMAC-SHA-1 is not weakened by SHA-1 collisions.
    return TOTP(secret, TOTP_DIGITS, SHA1(), TOTP_STEP)  # noqa: S303


def locked_message(until: datetime) -> str:
    return (f"This account is locked until {utc(until):%H:%M} UTC after repeated failed sign-ins; "
            "ask an administrator to unlock it, or wait.")


class SignIn:
    """Sign-in and sessions for every organisation on the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.engine = node.db.engine
        self.audit = node.audit

    def _now(self) -> datetime:
        return utc(self.node.clock())

    def _token(self) -> str:
        return base64.urlsafe_b64encode(self.node.rng(32)).decode("ascii").rstrip("=")

    def _user(self, conn: Connection, org_id: str, name: str) -> Any:
        return conn.execute(select(t.users).where(t.users.c.org_id == org_id, t.users.c.name == name)).first()

    def _existing(self, conn: Connection, org_id: str, name: str) -> Any:
        row = self._user(conn, org_id, name)
        if row is None:
            raise NotFound(f"No user called {name!r} in organisation {org_id}.")
        return row

    # Signing in ---------------------------------------------------------------------------------

    def password(self, org_id: str, name: str, password: str) -> Attempt:
        """Check a user name and password; every attempt is audited. Raises AuthenticationFailed, or
        AccountLocked while the account is locked (even when the password is right)."""
        with self.engine.connect() as conn:
            row = self._user(conn, org_id, name)
        if row is not None:
            self._refuse_if_locked(row, "password")
        try:
            # Verify against a fixed dummy hash for unknown users, so timing does not reveal who exists.
            verify_password(password, row.password_hash if row is not None and row.password_hash else _dummy_hash())
            if row is None or not row.password_hash:
                raise AuthenticationFailed(_WRONG)
        except AuthenticationFailed:
            reason = "wrong password" if row is None or row.password_hash else "no web password set"
            self._failed(org_id, name, row, "password", reason)
            raise AuthenticationFailed(_WRONG) from None
        actor = Actor(org_id=org_id, name=row.name, role=Role(row.role))
        if row.totp_secret is not None:
            # Not signed in yet: the count resets only when the code is right too.
            return Attempt(actor, row.id, True)
        self._succeeded(row.id)
        self.audit.append(org_id, row.name, "login", row.id, details={"method": "password"})
        return Attempt(actor, row.id, False)

    def _refuse_if_locked(self, row: Any, method: str) -> None:
        if row.locked_until is not None and utc(row.locked_until) > self._now():
            self.audit.append(row.org_id, row.name, "login.failed", row.id, outcome=REFUSED,
                              details={"method": method, "reason": "account locked"})
            raise AccountLocked(locked_message(row.locked_until))

    def _failed(self, org_id: str, name: str, row: Any, method: str, reason: str) -> None:
        if row is None:
            self.audit.append(org_id, name, "login.failed", None, outcome=REFUSED,
                              details={"method": method, "reason": "unknown user"})
            return
        until = None
        with self.engine.begin() as conn:
            # Increment in the database, so concurrent failures all count.
            conn.execute(update(t.users).where(t.users.c.id == row.id)
                         .values(failed_logins=t.users.c.failed_logins + 1))
            count = conn.execute(select(t.users.c.failed_logins).where(t.users.c.id == row.id)).scalar_one()
            if count >= MAX_FAILURES:
                until = self._now() + LOCK_FOR
                # The count starts again, so the account gets a full set of tries once the lock ends.
                conn.execute(update(t.users).where(t.users.c.id == row.id)
                             .values(failed_logins=0, locked_until=until))
                conn.execute(delete(t.web_sessions).where(t.web_sessions.c.user_id == row.id,
                                                          t.web_sessions.c.totp_pending.is_(True)))
        self.audit.append(org_id, row.name, "login.failed", row.id, outcome=REFUSED,
                          details={"method": method, "reason": reason, "failures": int(count)})
        if until is not None:
            self.audit.append(org_id, row.name, "login.locked", row.id,
                              details={"until": iso(until), "failures": int(count)})
            raise AccountLocked(locked_message(until))

    def _succeeded(self, user_id: str, **values: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(update(t.users).where(t.users.c.id == user_id)
                                .values(failed_logins=0, locked_until=None, **values)).rowcount

    def totp(self, cookie_secret: str, code: str) -> tuple[str, Session]:
        """Finish a pending sign-in with a 6-digit code; returns a new cookie secret and the full session.

        The pending session is replaced, so its cookie secret never becomes a signed-in one. A code is
        accepted for the current 30-second step or the one either side, and each step only once.
        """
        pending = self.pending(cookie_secret)
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.id == pending.user_id)).one()
        self._refuse_if_locked(row, "totp")
        code = "".join(code.split())
        step = self._matching_step(row, code) if len(code) == TOTP_DIGITS and code.isdigit() else None
        if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
            reason = "wrong code" if step is None else "code already used"
            self._failed(row.org_id, row.name, row, "totp", reason)
            raise AuthenticationFailed("The security code is wrong or has already been used; "
                                       "enter the newest code from your authenticator app.")
        # The condition on the last step makes two requests racing with one code accept it once.
        with self.engine.begin() as conn:
            used = conn.execute(update(t.users).where(
                t.users.c.id == row.id,
                (t.users.c.totp_last_step.is_(None)) | (t.users.c.totp_last_step < step),
            ).values(totp_last_step=step, failed_logins=0, locked_until=None)).rowcount
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id_hash == _hash(cookie_secret)))
        if used != 1:
            self._failed(row.org_id, row.name, row, "totp", "code already used")
            raise AuthenticationFailed("The security code has already been used; wait for the next one.")
        self.audit.append(row.org_id, row.name, "login", row.id, details={"method": "totp"})
        return self._create(pending.actor, row.id, totp_pending=False)

    def _matching_step(self, row: Any, code: str) -> int | None:
        totp = _totp(self._totp_secret(row))
        now_step = int(self._now().timestamp()) // TOTP_STEP
        for step in (now_step - 1, now_step, now_step + 1):
            if hmac.compare_digest(totp.generate(step * TOTP_STEP), code.encode("ascii")):
                return step
        return None

    def _totp_secret(self, row: Any) -> bytes:
        kek_id, _, wrapped = str(row.totp_secret).partition(".")
        store = self.node.keystore(row.org_id)
        return store.unwrap(kek_id, base64.b64decode(wrapped), totp_aad(row.org_id, row.id))

    # Sessions -----------------------------------------------------------------------------------

    def start(self, actor: Actor) -> tuple[str, Session]:
        """Open a session for a user whose password was just checked; returns the cookie secret (to set
        once, never stored) and the session. A user with TOTP gets a pending session until ``totp``."""
        with self.engine.connect() as conn:
            row = self._user(conn, actor.org_id, actor.name)
        if row is None:
            raise AuthenticationFailed(_WRONG)
        return self._create(Actor(row.org_id, row.name, Role(row.role)), row.id,
                            totp_pending=row.totp_secret is not None)

    def _create(self, actor: Actor, user_id: str, *, totp_pending: bool) -> tuple[str, Session]:
        now = self._now()
        secret = self._token()
        session = Session(actor, user_id, self._token(), now, now,
                          now + (PENDING_TIMEOUT if totp_pending else ABSOLUTE_TIMEOUT), totp_pending)
        with self.engine.begin() as conn:
            # Sweep sessions nobody can use any more, so the table does not grow without end.
            conn.execute(delete(t.web_sessions).where(
                (t.web_sessions.c.expires_at <= now) | (t.web_sessions.c.last_seen_at <= now - IDLE_TIMEOUT)))
            conn.execute(t.web_sessions.insert().values(
                id_hash=_hash(secret), org_id=actor.org_id, user_id=user_id, csrf_token=session.csrf_token,
                created_at=now, last_seen_at=now, expires_at=session.expires_at, totp_pending=totp_pending))
        return secret, session

    def _load(self, cookie_secret: str) -> Session:
        if not cookie_secret:
            raise AuthenticationFailed("You are not signed in.")
        id_hash = _hash(cookie_secret)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.web_sessions, t.users.c.name, t.users.c.role)
                .join(t.users, t.users.c.id == t.web_sessions.c.user_id)
                .where(t.web_sessions.c.id_hash == id_hash)
            ).first()
        if row is None:
            raise AuthenticationFailed("You are not signed in, or your session has ended; sign in again.")
        now = self._now()
        last_seen, expires = utc(row.last_seen_at), utc(row.expires_at)
        if now >= expires or now - last_seen >= IDLE_TIMEOUT:
            with self.engine.begin() as conn:
                conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id_hash == id_hash))
            why = "after 30 minutes without activity" if now < expires else "at the end of its time limit"
            raise AuthenticationFailed(f"Your session expired {why}; sign in again.")
        if now - last_seen >= TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(update(t.web_sessions).where(t.web_sessions.c.id_hash == id_hash)
                             .values(last_seen_at=now))
            last_seen = now
        return Session(Actor(row.org_id, row.name, Role(row.role)), row.user_id, row.csrf_token,
                       utc(row.created_at), last_seen, expires, bool(row.totp_pending))

    def session(self, cookie_secret: str) -> Session:
        """The signed-in session the cookie stands for. Raises AuthenticationFailed when it is unknown,
        expired (30 minutes idle, 12 hours in all) or still waiting for its TOTP code."""
        session = self._load(cookie_secret)
        if session.totp_pending:
            raise AuthenticationFailed("Enter the security code from your authenticator app to finish signing in.")
        return session

    def pending(self, cookie_secret: str) -> Session:
        """The half-finished sign-in waiting for its TOTP code (for the code page and its form token)."""
        session = self._load(cookie_secret)
        if not session.totp_pending:
            raise AuthenticationFailed("There is no sign-in waiting for a security code; sign in again.")
        return session

    def end(self, cookie_secret: str) -> None:
        """Sign out: the session is deleted, so the cookie is worthless even if it was copied."""
        if not cookie_secret:
            return
        id_hash = _hash(cookie_secret)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.web_sessions.c.org_id, t.web_sessions.c.user_id, t.web_sessions.c.totp_pending,
                       t.users.c.name)
                .join(t.users, t.users.c.id == t.web_sessions.c.user_id)
                .where(t.web_sessions.c.id_hash == id_hash)
            ).first()
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.id_hash == id_hash))
        if row is not None and not row.totp_pending:
            self.audit.append(row.org_id, row.name, "logout", row.user_id)

    # Administration -----------------------------------------------------------------------------

    def set_password(self, actor: Actor, name: str, password: str) -> None:
        """Set or replace a user's password; their sessions end and any lock-out is lifted."""
        with self.audit.event(actor, "user.password", None, name=name) as event:
            actor.require(Permission.USERS_MANAGE, "set passwords")
            if len(password) < MIN_PASSWORD:
                raise UsageError(f"A password must be at least {MIN_PASSWORD} characters long.")
            with self.engine.begin() as conn:
                row = self._existing(conn, actor.org_id, name)
                event["object"] = row.id
                conn.execute(update(t.users).where(t.users.c.id == row.id).values(
                    password_hash=hash_password(password, self.node.rng), failed_logins=0, locked_until=None))
                ended = conn.execute(delete(t.web_sessions).where(t.web_sessions.c.user_id == row.id)).rowcount
            event.update(replaced=row.password_hash is not None, sessions_ended=ended)

    def enrol_totp(self, actor: Actor, name: str) -> tuple[str, str]:
        """Give a user a new TOTP secret (replacing any); returns the base32 secret and the otpauth:// URI,
        to show once. Administrators enrol anyone in their organisation; users may enrol themselves."""
        with self.audit.event(actor, "user.totp", None, name=name, enrolled=True) as event:
            if name != actor.name:
                actor.require(Permission.USERS_MANAGE, "set up security codes for other users")
            secret = self.node.rng(TOTP_SECRET_BYTES)
            store = self.node.keystore(actor.org_id)
            with self.engine.begin() as conn:
                row = self._existing(conn, actor.org_id, name)
                event["object"] = row.id
                kek = self.node.keys.current(conn, actor.org_id, KEK)
                wrapped = store.wrap(kek, secret, totp_aad(actor.org_id, row.id))
                conn.execute(update(t.users).where(t.users.c.id == row.id).values(
                    totp_secret=f"{kek}.{base64.b64encode(wrapped).decode('ascii')}", totp_last_step=None))
            event["replaced"] = row.totp_secret is not None
        issuer = self.node.organisation(actor.org_id).name
        return (base64.b32encode(secret).decode("ascii").rstrip("="),
                _totp(secret).get_provisioning_uri(name, issuer))

    def remove_totp(self, actor: Actor, name: str) -> bool:
        """Stop asking a user for codes (a lost phone); returns whether they had TOTP."""
        with self.audit.event(actor, "user.totp", None, name=name, enrolled=False) as event:
            actor.require(Permission.USERS_MANAGE, "remove security codes")
            with self.engine.begin() as conn:
                row = self._existing(conn, actor.org_id, name)
                event["object"] = row.id
                conn.execute(update(t.users).where(t.users.c.id == row.id)
                             .values(totp_secret=None, totp_last_step=None))
            event["had_totp"] = row.totp_secret is not None
        return row.totp_secret is not None

    def unlock(self, actor: Actor, name: str) -> datetime | None:
        """Lift a lock-out now and reset the failure count; returns when the lock would have ended."""
        with self.audit.event(actor, "user.unlock", None, name=name) as event:
            actor.require(Permission.USERS_MANAGE, "unlock accounts")
            with self.engine.begin() as conn:
                row = self._existing(conn, actor.org_id, name)
                event["object"] = row.id
            self._succeeded(row.id)
            until = utc(row.locked_until) if row.locked_until is not None else None
            was_locked = until is not None and until > self._now()
            event.update(was_locked=was_locked, failures=row.failed_logins)
        return until if was_locked else None

    def status(self, org_id: str, name: str) -> dict[str, Any]:
        """Whether a user can sign in on the web: password set, TOTP enrolled, locked until when."""
        with self.engine.connect() as conn:
            row = self._existing(conn, org_id, name)
        until = utc(row.locked_until) if row.locked_until is not None else None
        return {"password": row.password_hash is not None, "totp": row.totp_secret is not None,
                "locked_until": iso(until) if until is not None and until > self._now() else None,
                "failed_logins": row.failed_logins}
