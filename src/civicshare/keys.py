"""The key register: for every key, whose it is, what for, which algorithm and where it is held."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from civicshare.clock import Clock, Rng, iso, new_id
from civicshare.crypto import Keystore
from civicshare.db import tables as t
from civicshare.errors import ConfigError

SIGNING, RECEIVING, KEK, DATA = "signing", "receiving", "kek", "data"
ACTIVE, DESTROYED = "active", "destroyed"

ALGORITHMS = {
    SIGNING: "Ed25519",
    RECEIVING: "X25519 (age v1)",
    KEK: "AES-256-GCM key wrap",
    "data:dataset": "AES-256-GCM (Parquet modular encryption)",
    "data:document": "X25519 + ChaCha20-Poly1305 (age v1)",
}


@dataclass(frozen=True)
class KeyRecord:
    id: str
    org_id: str
    purpose: str
    algorithm: str
    custody: str
    location: str
    public: str | None
    holding_id: str | None
    created_at: datetime
    rotated_at: datetime | None
    state: str
    destroyed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "organisation": self.org_id, "purpose": self.purpose,
            "algorithm": self.algorithm, "custody": self.custody, "location": self.location,
            "public": self.public, "holding": self.holding_id, "created": iso(self.created_at),
            "last_rotated": iso(self.rotated_at), "state": self.state, "destroyed": iso(self.destroyed_at),
        }


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        row.id, row.org_id, row.purpose, row.algorithm, row.custody, row.location, row.public,
        row.holding_id, row.created_at, row.rotated_at, row.state, row.destroyed_at,
    )


def dek_aad(org_id: str, holding_id: str, key_id: str) -> bytes:
    """Binds a wrapped data key to its organisation, holding and key id, so it cannot be swapped."""
    return f"civicshare/dek/v1|{org_id}|{holding_id}|{key_id}".encode()


def totp_aad(org_id: str, user_id: str) -> bytes:
    """Binds a wrapped TOTP secret to its organisation and user, so it cannot be moved to another user."""
    return f"civicshare/totp/v1|{org_id}|{user_id}".encode()


class KeyRegister:
    def __init__(self, engine: Engine, clock: Clock, rng: Rng) -> None:
        self.engine = engine
        self.clock = clock
        self.rng = rng

    def create_org_keys(self, conn: Connection, org_id: str, store: Keystore) -> None:
        """Generate the signing key, the age identity and the first KEK, and register them."""
        now = self.clock()
        signing, receiving, kek = (new_id("k", self.rng) for _ in range(3))
        public = store.create_signing_key(signing)
        recipient = store.create_age_identity(receiving)
        store.create_kek(kek)
        for key_id, purpose, pub in (
            (signing, SIGNING, "ed25519:" + base64.b64encode(public).decode("ascii")),
            (receiving, RECEIVING, recipient),
            (kek, KEK, None),
        ):
            self._insert(conn, key_id, org_id, purpose, ALGORITHMS[purpose], store.backend,
                         store.location(key_id), pub, now)

    def _insert(self, conn: Connection, key_id: str, org_id: str, purpose: str, algorithm: str,
                custody: str, location: str, public: str | None, now: datetime, **extra: Any) -> None:
        conn.execute(insert(t.keys).values(
            id=key_id, org_id=org_id, purpose=purpose, algorithm=algorithm, custody=custody,
            location=location, public=public, created_at=now, state=ACTIVE, **extra,
        ))

    def add_data_key(self, conn: Connection, org_id: str, holding_id: str, kind: str, store: Keystore,
                     key_id: str, dek: bytes) -> None:
        kek = self.current(conn, org_id, KEK)
        wrapped = store.wrap(kek, dek, dek_aad(org_id, holding_id, key_id))
        self._insert(conn, key_id, org_id, DATA, ALGORITHMS[f"data:{kind}"], "wrapped",
                     f"database, wrapped by KEK {kek}", None, self.clock(),
                     wrapped_by=kek, material=wrapped, holding_id=holding_id)

    def current(self, conn: Connection, org_id: str, purpose: str) -> str:
        row = conn.execute(
            select(t.keys.c.id).where(t.keys.c.org_id == org_id, t.keys.c.purpose == purpose,
                                      t.keys.c.state == ACTIVE)
            .order_by(t.keys.c.created_at.desc(), t.keys.c.id)
        ).first()
        if row is None:
            raise ConfigError(f"Organisation {org_id} has no active {purpose} key.")
        return str(row.id)

    def list(self, org_id: str) -> list[KeyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.keys).where(t.keys.c.org_id == org_id)
                .order_by(t.keys.c.purpose != SIGNING, t.keys.c.purpose != RECEIVING,
                          t.keys.c.purpose != KEK, t.keys.c.created_at, t.keys.c.id)
            )
            return [_record(r) for r in rows]

    def signing_key(self, org_id: str) -> tuple[str, bytes]:
        """The id and raw public key of the organisation's active signing key; no keystore needed."""
        with self.engine.connect() as conn:
            key_id = self.current(conn, org_id, SIGNING)
            public = conn.execute(select(t.keys.c.public).where(t.keys.c.id == key_id)).scalar_one()
        return key_id, base64.b64decode(public.removeprefix("ed25519:"))

    def age_recipient(self, org_id: str) -> tuple[str, str]:
        """The id and ``age1...`` recipient of the organisation's active receiving key."""
        with self.engine.connect() as conn:
            key_id = self.current(conn, org_id, RECEIVING)
            public = conn.execute(select(t.keys.c.public).where(t.keys.c.id == key_id)).scalar_one()
        return key_id, str(public)

    def destroyed_ids(self, org_id: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.keys.c.id).where(t.keys.c.org_id == org_id,
                                                          t.keys.c.state == DESTROYED))
            return {r.id for r in rows}

    def rotate_kek(self, org_id: str, store: Keystore) -> tuple[str, int]:
        """Make a new KEK, re-wrap every live data key under it, then destroy the old KEKs.

        The new KEK is in the keystore before any data key points at it, and old KEKs leave the
        keystore only after the re-wrapped keys are committed, so a crash at any step loses nothing.
        """
        now = self.clock()
        new_kek = new_id("k", self.rng)
        store.create_kek(new_kek)
        with self.engine.begin() as conn:
            old = [r.id for r in conn.execute(select(t.keys.c.id).where(
                t.keys.c.org_id == org_id, t.keys.c.purpose == KEK, t.keys.c.state == ACTIVE))]
            self._insert(conn, new_kek, org_id, KEK, ALGORITHMS[KEK], store.backend,
                         store.location(new_kek), None, now)
            live = conn.execute(select(t.keys).where(
                t.keys.c.org_id == org_id, t.keys.c.purpose == DATA, t.keys.c.state == ACTIVE))
            count = 0
            for row in live:
                aad = dek_aad(org_id, row.holding_id, row.id)
                dek = store.unwrap(row.wrapped_by, row.material, aad)
                conn.execute(update(t.keys).where(t.keys.c.id == row.id).values(
                    material=store.wrap(new_kek, dek, aad), wrapped_by=new_kek, rotated_at=now,
                    location=f"database, wrapped by KEK {new_kek}"))
                count += 1
            self._rewrap_totp_secrets(conn, org_id, store, new_kek)
            conn.execute(update(t.keys).where(t.keys.c.id.in_(old)).values(
                state=DESTROYED, destroyed_at=now, rotated_at=now))
        for key_id in old:
            store.destroy(key_id)
        return new_kek, count

    def _rewrap_totp_secrets(self, conn: Connection, org_id: str, store: Keystore, new_kek: str) -> None:
        """Users' TOTP secrets ("<kek id>.<base64>") move to the new KEK with the data keys."""
        rows = conn.execute(select(t.users.c.id, t.users.c.totp_secret).where(
            t.users.c.org_id == org_id, t.users.c.totp_secret.is_not(None)))
        for row in rows.all():
            kek_id, _, wrapped = row.totp_secret.partition(".")
            secret = store.unwrap(kek_id, base64.b64decode(wrapped), totp_aad(org_id, row.id))
            rewrapped = base64.b64encode(store.wrap(new_kek, secret, totp_aad(org_id, row.id))).decode("ascii")
            conn.execute(update(t.users).where(t.users.c.id == row.id)
                         .values(totp_secret=f"{new_kek}.{rewrapped}"))

    def unwrap_data_key(self, org_id: str, key_id: str, store: Keystore) -> bytes | None:
        """The data key in plaintext, or None when it has been destroyed (shredded)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.keys).where(t.keys.c.id == key_id, t.keys.c.org_id == org_id)).first()
        if row is None or row.state == DESTROYED or row.material is None:
            return None
        return store.unwrap(row.wrapped_by, row.material, dek_aad(org_id, row.holding_id, row.id))

    def destroy_data_key(self, conn: Connection, org_id: str, key_id: str) -> None:
        conn.execute(update(t.keys).where(t.keys.c.id == key_id, t.keys.c.org_id == org_id).values(
            material=None, state=DESTROYED, destroyed_at=self.clock()))
