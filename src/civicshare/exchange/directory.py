"""Federation directories: a signed list of member cards and revocations, and operating one.

A directory is a signed document of kind ``directory`` whose body is::

    {"name": "Fenland Federation", "operator_key": "ed25519:...", "serial": 7,
     "issued": "2026-11-22T10:00:00Z", "members": [<signed card>, ...],
     "revocations": [{"org_id": "east-marsh", "revoked": "2026-11-22T09:58:00Z", "reason": "..."}]}

It is signed by the operator's key it names; a node that trusts the directory pins that key on first
use (see ``civicshare.exchange.federation``) and from then on accepts only editions signed by it,
with the same name and a higher serial. Each member card is also signed by the member itself.

The operator's side lives in the node home's ``directory`` folder: ``operator.keystore`` (the
operator key, under the node passphrase), ``state.json`` (members and revocations being edited) and
``published.json`` (the latest signed edition, which the node serves at ``/directory.json``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from civicshare.access import Actor, Permission
from civicshare.audit.log import AuditLog
from civicshare.canonical import canonical_json, parse_json
from civicshare.clock import Clock, Rng
from civicshare.config import check_org_id
from civicshare.crypto import FileKeystore, KdfParams
from civicshare.crypto.atomicfile import atomic_write, exclusive_lock
from civicshare.errors import ConfigError, Conflict, InvalidInput, NotFound, SecurityError, TooLarge, UsageError
from civicshare.exchange.card import CARD, Card, card_time, key_text, parse_card, parse_key_text
from civicshare.exchange.signed import document_body, sign_document, verify_document

DIRECTORY = "directory"
STATE_VERSION = 1
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
MAX_NAME = 100
MAX_REASON = 500
OPERATOR_KEY_ID = "directory-operator"
_FIELDS = {"name", "operator_key", "serial", "issued", "members", "revocations"}
_REVOCATION_FIELDS = {"org_id", "revoked", "reason"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Revocation:
    org_id: str
    revoked: datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"org_id": self.org_id, "revoked": card_time(self.revoked), "reason": self.reason}


@dataclass(frozen=True)
class Directory:
    """One verified edition of a directory."""

    name: str
    operator_key: bytes
    serial: int
    issued: datetime
    members: dict[str, Card]
    revocations: dict[str, Revocation]
    document: dict[str, Any] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "operator_key": key_text(self.operator_key),
                "fingerprint": fingerprint(self.operator_key), "serial": self.serial,
                "issued": card_time(self.issued), "members": sorted(self.members),
                "revocations": [self.revocations[o].to_json() for o in sorted(self.revocations)]}


def fingerprint(public_key: bytes) -> str:
    """A short, readable fingerprint of a key, for a person to compare over the phone."""
    digest = hashlib.sha256(public_key).hexdigest()[:32]
    return " ".join(digest[i:i + 4] for i in range(0, 32, 4))


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UsageError("A directory needs a name, such as 'Fenland Federation'.")
    if len(name) > MAX_NAME or _CONTROL.search(name) or name != name.strip():
        raise UsageError(f"A directory name is one line of at most {MAX_NAME} characters, without spaces at "
                         "either end.")
    return name


def _member(document: object, index: int) -> Card:
    where = f"members[{index}]"
    try:
        body = document_body(CARD, document)
        card = Card.from_body(body)
        verify_document(CARD, document, card.signing_key)
    except (InvalidInput, SecurityError) as exc:
        raise InvalidInput(f"The card at {where} of this directory is not valid: {exc.one_line()}") from None
    return card


def _revocation(item: object, index: int) -> Revocation:
    where = f"revocations[{index}]"
    if not isinstance(item, dict) or set(item) != _REVOCATION_FIELDS:
        raise InvalidInput(f"{where} of this directory must have exactly org_id, revoked and reason.")
    try:
        org_id = check_org_id(item["org_id"]) if isinstance(item["org_id"], str) else None
    except UsageError:
        org_id = None
    if org_id is None:
        raise InvalidInput(f"{where}.org_id of this directory is not an organisation id.")
    reason = item["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidInput(f"{where}.reason of this directory must be text of at most {MAX_REASON} characters.")
    return Revocation(org_id, _time(item["revoked"], f"{where}.revoked"), reason)


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", value):
        raise InvalidInput(f"{what} of this directory must be a UTC time such as 2026-11-01T09:30:00Z.")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} of this directory is not a real date and time.") from None


def parse_directory(text: str | bytes | dict[str, Any], *, pinned_key: bytes | None = None) -> Directory:
    """Read a signed directory and verify it with its operator key (which must equal ``pinned_key``).

    InvalidInput when malformed; SecurityError when the signature does not verify or the operator
    key is not the pinned one. Member cards are checked and verified, but not for expiry: a card
    that expires stops being usable, it does not spoil the whole edition.
    """
    if isinstance(text, dict):
        document: Any = text
    else:
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
        if size > MAX_DIRECTORY_BYTES:
            raise TooLarge(f"This directory is {size:,} bytes; this node reads directories of at most "
                           f"{MAX_DIRECTORY_BYTES:,}.")
        document = parse_json(text)
    body = document_body(DIRECTORY, document)
    missing = sorted(_FIELDS - set(body))
    extra = sorted(set(body) - _FIELDS)
    if missing or extra:
        raise InvalidInput("This directory is not a version 1 directory: "
                           + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                       + ([f"unknown {', '.join(extra)}"] if extra else [])) + ".")
    operator_key = parse_key_text(body["operator_key"], "operator_key")
    if pinned_key is not None and not hmac.compare_digest(operator_key, pinned_key):
        raise SecurityError(f"This directory is signed for the operator key {key_text(operator_key)}, not the "
                            f"pinned key {key_text(pinned_key)}: it is not from the operator you trust.")
    verify_document(DIRECTORY, document, operator_key)
    try:
        name = check_name(body["name"])
    except UsageError as exc:
        raise InvalidInput(exc.message) from None
    serial = body["serial"]
    if type(serial) is not int or serial < 1:
        raise InvalidInput("The serial of this directory must be a whole number from 1.")
    issued = _time(body["issued"], "issued")
    if not isinstance(body["members"], list) or not isinstance(body["revocations"], list):
        raise InvalidInput("The members and revocations of this directory must be lists.")
    members: dict[str, Card] = {}
    for i, item in enumerate(body["members"]):
        card = _member(item, i)
        if card.org_id in members:
            raise InvalidInput(f"This directory lists {card.org_id} twice.")
        members[card.org_id] = card
    revocations: dict[str, Revocation] = {}
    for i, item in enumerate(body["revocations"]):
        revocation = _revocation(item, i)
        if revocation.org_id in revocations:
            raise InvalidInput(f"This directory revokes {revocation.org_id} twice.")
        revocations[revocation.org_id] = revocation
    return Directory(name, operator_key, serial, issued, members, revocations, document)


# The operator's side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatedDirectory:
    """The directory this node operates, as it stands (members and revocations not yet published too)."""

    name: str
    operator_key: bytes
    serial: int
    members: list[str]
    revocations: list[Revocation]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "operator_key": key_text(self.operator_key),
                "fingerprint": fingerprint(self.operator_key), "published_serial": self.serial,
                "members": self.members, "revocations": [r.to_json() for r in self.revocations]}


class DirectoryOperator:
    """Operating a federation directory from this node home. Every change is logged in the acting
    organisation's audit log; only administrators operate the directory."""

    def __init__(self, folder: Path, audit: AuditLog, passphrase: Callable[[], str], clock: Clock, rng: Rng,
                 *, kdf: KdfParams | None = None) -> None:
        self.folder = folder
        self.audit = audit
        self._passphrase = passphrase
        self.clock = clock
        self.rng = rng
        self._kdf = kdf

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    @property
    def published_path(self) -> Path:
        return self.folder / "published.json"

    @property
    def keystore_path(self) -> Path:
        return self.folder / "operator.keystore"

    def _lock(self) -> Any:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return exclusive_lock(self.folder / "state.lock")

    def _read_state(self) -> dict[str, Any]:
        try:
            state = parse_json(self.state_path.read_bytes())
        except FileNotFoundError:
            raise NotFound("This node does not operate a directory; start one with 'civicshare directory init "
                           "--name NAME'.") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ConfigError(f"The directory state {self.state_path} is not a version {STATE_VERSION} state.")
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_path, canonical_json(state))

    def init(self, actor: Actor, name: str) -> OperatedDirectory:
        """Start operating a directory called ``name``: creates the operator key and an empty state."""
        with self.audit.event(actor, "directory.create", name) as event:
            actor.require(Permission.PARTNERS_MANAGE, "operate a directory")
            check_name(name)
            with self._lock():
                if self.state_path.exists() or self.keystore_path.exists():
                    raise Conflict(f"This node already operates a directory (see {self.folder}).")
                store = FileKeystore.create(self.keystore_path, self._passphrase(), kdf=self._kdf, rng=self.rng)
                try:
                    public = store.create_signing_key(OPERATOR_KEY_ID)
                    self._write_state({"version": STATE_VERSION, "name": name, "key_id": OPERATOR_KEY_ID,
                                       "operator_key": key_text(public), "serial": 0, "members": {},
                                       "revocations": {}})
                except BaseException:
                    self.keystore_path.unlink(missing_ok=True)
                    raise
                finally:
                    store.close()
            event.update(operator_key=key_text(public), fingerprint=fingerprint(public))
            return self.status()

    def status(self) -> OperatedDirectory:
        state = self._read_state()
        return OperatedDirectory(state["name"], parse_key_text(state["operator_key"]), state["serial"],
                                 sorted(state["members"]),
                                 [_revocation(state["revocations"][o], 0) for o in sorted(state["revocations"])])

    def add(self, actor: Actor, card_text: str | bytes) -> Card:
        """Verify a member's card and list it (replacing any card it had); lifts no revocation."""
        with self.audit.event(actor, "directory.member", None) as event:
            actor.require(Permission.PARTNERS_MANAGE, "operate a directory")
            card, document = parse_card(card_text, now=self.clock())
            event.update(object=card.org_id, name=card.name, signing_key=key_text(card.signing_key))
            with self._lock():
                state = self._read_state()
                event["change"] = "refreshed" if card.org_id in state["members"] else "new"
                state["members"][card.org_id] = document
                self._write_state(state)
            return card

    def revoke(self, actor: Actor, org_id: str, reason: str = "") -> Revocation:
        """Revoke ``org_id`` in the next edition. Takes effect at partners once published and fetched."""
        with self.audit.event(actor, "directory.revoke", org_id, reason=reason) as event:
            actor.require(Permission.PARTNERS_MANAGE, "operate a directory")
            check_org_id(org_id)
            if len(reason) > MAX_REASON or _CONTROL.search(reason):
                raise UsageError(f"A revocation reason is one line of at most {MAX_REASON} characters.")
            with self._lock():
                state = self._read_state()
                if org_id in state["revocations"]:
                    raise Conflict(f"{org_id} is already revoked in {state['name']}.")
                revocation = Revocation(org_id, self.clock().replace(microsecond=0), reason)
                state["revocations"][org_id] = revocation.to_json()
                event["was_member"] = org_id in state["members"]
                self._write_state(state)
            return revocation

    def publish(self, actor: Actor) -> Directory:
        """Sign the next edition (serial + 1) and make it the one served at ``/directory.json``."""
        with self.audit.event(actor, "directory.publish", None) as event:
            actor.require(Permission.PARTNERS_MANAGE, "operate a directory")
            with self._lock():
                state = self._read_state()
                event["object"] = state["name"]
                store = FileKeystore.open(self.keystore_path, self._passphrase(), rng=self.rng)
                try:
                    body = {"name": state["name"], "operator_key": state["operator_key"],
                            "serial": state["serial"] + 1, "issued": card_time(self.clock()),
                            "members": [state["members"][o] for o in sorted(state["members"])],
                            "revocations": [state["revocations"][o] for o in sorted(state["revocations"])]}
                    document = sign_document(DIRECTORY, body, state["key_id"],
                                             lambda data: store.sign(state["key_id"], data))
                finally:
                    store.close()
                directory = parse_directory(canonical_json(document), pinned_key=parse_key_text(state["operator_key"]))
                # The serial is spent before the edition appears: after a crash in between, the next
                # edition skips a number rather than reusing one for different contents.
                state["serial"] = directory.serial
                self._write_state(state)
                atomic_write(self.published_path, canonical_json(document))
                # Anyone may read a published edition: it is signed, and served without a token.
                os.chmod(self.published_path, 0o644)
            event.update(serial=directory.serial, members=len(directory.members),
                         revocations=len(directory.revocations))
            return directory

    def published(self) -> bytes | None:
        """The latest published edition's bytes, or None if nothing was published yet."""
        try:
            return self.published_path.read_bytes()
        except FileNotFoundError:
            return None
