"""Users and API tokens. Tokens are shown once; only a hash of their secret is stored."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from civicshare.access import Actor, Role
from civicshare.audit.entry import REFUSED
from civicshare.audit.log import AuditLog
from civicshare.clock import Clock, Rng, new_id
from civicshare.db import tables as t
from civicshare.errors import AuthenticationFailed, Conflict, UsageError

TOKEN_PREFIX = "cs1"  # noqa: S105 - version 1 of the token format: cs1.<token id>.<secret>


@dataclass(frozen=True)
class User:
    id: str
    org_id: str
    name: str
    role: Role
    created_at: datetime


def _secret_hash(secret: str) -> str:
    # The secret carries 256 random bits, so a fast hash is enough; passwords get Argon2id.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def hash_password(password: str, rng: Rng) -> str:
    kdf = Argon2id(salt=rng(16), length=32, iterations=3, lanes=1, memory_cost=65536)
    return kdf.derive_phc_encoded(password.encode("utf-8"))


@functools.cache
def _dummy_hash() -> str:
    """A real hash no password matches, made on first use so that importing this module stays cheap."""
    return Argon2id(salt=b"civicshare-dummy", length=32, iterations=3, lanes=1,
                    memory_cost=65536).derive_phc_encoded(b"no user has this password")


def verify_password(password: str, encoded: str) -> None:
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
    except (InvalidKey, ValueError):
        raise AuthenticationFailed("The user name or password is wrong.") from None


class Users:
    """User and token storage for every organisation on the node."""

    def __init__(self, engine: Engine, clock: Clock, rng: Rng, audit: AuditLog) -> None:
        self.engine = engine
        self.clock = clock
        self.rng = rng
        self.audit = audit

    def add(self, org_id: str, name: str, role: Role, password: str | None = None, *,
            by: str = "operator") -> tuple[User, str]:
        """Create a user and their first API token; returns the token, which is never shown again."""
        name = name.strip()
        if not name or len(name) > 200:
            raise UsageError("A user name must be 1 to 200 characters.")
        if password is not None and len(password) < 12:
            raise UsageError("A password must be at least 12 characters long.")
        user = User(new_id("u", self.rng), org_id, name, role, self.clock())
        pw_hash = hash_password(password, self.rng) if password is not None else None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.users).values(
                        id=user.id, org_id=org_id, name=name, role=role.value,
                        password_hash=pw_hash, created_at=user.created_at,
                    )
                )
                token = self._issue(conn, user)
        except SAIntegrityError:
            raise Conflict(f"A user called {name!r} already exists in organisation {org_id}.") from None
        self.audit.append(org_id, by, "user.create", user.id,
                          details={"name": name, "role": role.value, "password": pw_hash is not None})
        self.audit.append(org_id, by, "token.create", token.split(".")[1], details={"user": user.id})
        return user, token

    def _issue(self, conn: Connection, user: User) -> str:
        token_id = new_id("t", self.rng)
        secret = base64.urlsafe_b64encode(self.rng(32)).decode("ascii").rstrip("=")
        conn.execute(
            insert(t.tokens).values(
                id=token_id, org_id=user.org_id, user_id=user.id,
                secret_hash=_secret_hash(secret), created_at=self.clock(),
            )
        )
        return f"{TOKEN_PREFIX}.{token_id}.{secret}"

    def list(self, org_id: str) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.users).where(t.users.c.org_id == org_id).order_by(t.users.c.name))
            return [User(r.id, r.org_id, r.name, Role(r.role), r.created_at) for r in rows]

    def authenticate(self, token: str) -> Actor:
        """The actor a bearer token stands for. Raises AuthenticationFailed; never returns None."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
            raise AuthenticationFailed("The API token is not in the civicshare format (cs1.<id>.<secret>).")
        _, token_id, secret = parts
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.tokens.c.secret_hash, t.tokens.c.revoked_at, t.users.c.name, t.users.c.role,
                       t.users.c.org_id)
                .join(t.users, t.users.c.id == t.tokens.c.user_id)
                .where(t.tokens.c.id == token_id)
            ).first()
        # Compare against a dummy hash when the id is unknown, so timing does not reveal valid ids.
        expected = row.secret_hash if row is not None else "0" * 64
        matches = hmac.compare_digest(expected, _secret_hash(secret))
        if row is None or not matches or row.revoked_at is not None:
            if row is not None:
                # Attributable to an organisation: its log records the refusal. Unknown token ids are
                # not, and the API's own log records them instead.
                reason = "revoked token" if matches else "wrong token secret"
                self.audit.append(row.org_id, row.name, "login.failed", token_id,
                                  outcome=REFUSED, details={"method": "token", "reason": reason})
            raise AuthenticationFailed("The API token is not valid.")
        return Actor(org_id=row.org_id, name=row.name, role=Role(row.role))
