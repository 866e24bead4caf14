"""The manifest: the sender's signed description of one transfer (signed document kind ``manifest``).

It names the transfer, both organisations, the data sharing agreement it moves under (id, version and
the SHA-256 of its canonical form), the holding (its kind, name, classification and, for a dataset,
the row count, the columns, only the agreed ones, and its quality summary), the sizes and SHA-256 of
the plaintext and of the age ciphertext, the age recipient the ciphertext is sealed to, and the
SHA-256 of every part the ciphertext is sent in. The recipient checks every byte it receives against
it, so the manifest is all it needs to trust.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from civicshare.agreements.model import CLASSIFICATIONS
from civicshare.canonical import canonical_json
from civicshare.errors import InvalidInput, TooLarge, UsageError
from civicshare.exchange.fields import (
    SHA256_RE,
    Checker,
    Digest,
    age_recipient_text,
    byte_count,
    doc_time,
    holding_id,
    org_id,
    parse_time,
    read_document,
    sha256_hex,
    text_line,
    transfer_id,
)
from civicshare.exchange.quality_summary import check_quality, score_of
from civicshare.exchange.signed import Signer, document_body, sign_document, verify_document

MANIFEST = "manifest"
PART_SIZE = 8 * 1024 * 1024
MAX_PART_SIZE = 16 * 1024 * 1024
# A 1 TiB payload in 8 MiB parts has 131,072 parts; this leaves room without inviting abuse.
MAX_PARTS = 200_000
MAX_COLUMNS = 2_000
MAX_NAME = 300
MAX_COLUMN_NAME = 300
# Canonical JSON spends 67 bytes per part hash, so MAX_PARTS hashes take about 13.4 MB; columns at
# most about 0.7 MB. 16 MiB holds the largest valid manifest even pretty-printed (a test checks it).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
DATASET, DOCUMENT = "dataset", "document"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
# Agreement ids as the register writes and checks them (civicshare.agreements.validate.ID_RE).
AGREEMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
MAX_AGREEMENT_VERSION = 1_000_000
_FIELDS = ("transfer", "sender", "recipient", "created", "agreement", "holding", "plaintext", "ciphertext",
           "parts")
_HOLDING_FIELDS = ("id", "kind", "name", "media_type", "classification", "rows", "columns")
# ``holding.quality`` is left out (or null) for a document, or a dataset whose sender states no summary;
# manifests signed before quality summaries existed have none either.
_OPTIONAL_HOLDING_FIELDS = ("quality",)
_AGREEMENT_FIELDS = ("id", "version", "sha256")


@dataclass(frozen=True)
class AgreementRef:
    """The agreement a transfer moves under: its id, version and the SHA-256 of its canonical form.

    The hash decides: the recipient looks the agreement up by it, so both ends hold the very same text.
    """

    id: str
    version: int
    sha256: str

    def to_body(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class HoldingInfo:
    """What the recipient learns of the holding: enough to store it and to show what arrived."""

    id: str
    kind: str
    name: str
    media_type: str
    rows: int | None
    columns: list[dict[str, str]] | None
    classification: str
    # A dataset's quality summary in its manifest form (civicshare.exchange.quality_summary); None for a
    # document, or a dataset whose sender stated none.
    quality: dict[str, Any] | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "name": self.name, "media_type": self.media_type,
            "classification": self.classification, "rows": self.rows,
            "columns": [dict(c) for c in self.columns] if self.columns is not None else None}
        if self.quality is not None:
            # Left out when there is none, so such a manifest keeps the bytes earlier versions wrote.
            body["quality"] = {**self.quality, "fields": {k: dict(v) for k, v in self.quality["fields"].items()}}
        return body

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.columns or []]

    @property
    def quality_score(self) -> float | None:
        """The score (0 to 100) the sender's quality summary states, if it states one."""
        return score_of(self.quality)


def parts_needed(size: int, part_size: int) -> int:
    """How many parts of ``part_size`` bytes carry ``size`` bytes (the last may be shorter)."""
    return -(-size // part_size)


@dataclass(frozen=True)
class Manifest:
    transfer: str
    sender: str
    recipient: str
    created: datetime
    agreement: AgreementRef
    holding: HoldingInfo
    plaintext: Digest
    ciphertext: Digest
    age_recipient: str
    part_size: int
    part_hashes: tuple[str, ...]

    def to_body(self) -> dict[str, Any]:
        return {
            "transfer": self.transfer, "sender": self.sender, "recipient": self.recipient,
            "created": doc_time(self.created), "agreement": self.agreement.to_body(),
            "holding": self.holding.to_body(),
            "plaintext": self.plaintext.to_body(),
            "ciphertext": {**self.ciphertext.to_body(), "age_recipient": self.age_recipient},
            "parts": {"size": self.part_size, "sha256": list(self.part_hashes)},
        }

    @property
    def part_count(self) -> int:
        return len(self.part_hashes)

    def part_length(self, n: int) -> int:
        """The exact length of part ``n``: ``part_size``, except the last, which may be shorter."""
        if type(n) is not int or not 0 <= n < self.part_count:
            raise InvalidInput(f"Transfer {self.transfer} has parts 0 to {self.part_count - 1}; there is no part {n}.")
        if n < self.part_count - 1:
            return self.part_size
        return self.ciphertext.size - self.part_size * (self.part_count - 1)

    @property
    def part_lengths(self) -> list[int]:
        """The exact length of every part, in order."""
        return [self.part_length(n) for n in range(self.part_count)]

    @classmethod
    def from_body(cls, body: object) -> Manifest:
        """Check every field; InvalidInput lists each fault with its field path."""
        if not isinstance(body, dict):
            raise InvalidInput("The body of a manifest is a JSON object.")
        check = Checker()
        check.fields(body, _FIELDS, "", "manifest")
        transfer = check.field(body, "transfer", transfer_id)
        sender = check.field(body, "sender", org_id)
        recipient = check.field(body, "recipient", org_id)
        created = check.field(body, "created", parse_time)
        # A missing agreement is noted by ``fields``.
        agreement = _agreement(check, body["agreement"]) if "agreement" in body else AgreementRef("", 0, "")
        holding = _holding(check, body.get("holding"))
        plaintext = check.digest(body.get("plaintext"), "plaintext", extra=())
        ciphertext = check.digest(body.get("ciphertext"), "ciphertext", extra=("age_recipient",))
        cipher_body = body.get("ciphertext")
        age_recipient = (check.field(cipher_body, "age_recipient", age_recipient_text, "ciphertext.")
                         if isinstance(cipher_body, dict) else None)
        part_size, part_hashes = _parts(check, body.get("parts"))
        if not check.problems:
            if sender == recipient:
                check.add("names the sender as its own recipient", "recipient")
            if ciphertext.size <= plaintext.size:
                check.add("is not larger than the plaintext, which an age ciphertext always is", "ciphertext.size")
            needed = parts_needed(ciphertext.size, part_size)
            if needed != len(part_hashes):
                check.add(f"lists {len(part_hashes)} part hashes, but {ciphertext.size} bytes in parts of "
                          f"{part_size} bytes make {needed}", "parts.sha256")
        check.raise_if_any("This manifest is not a valid civicshare manifest")
        assert age_recipient is not None
        return cls(transfer, sender, recipient, created, agreement, holding, plaintext, ciphertext, age_recipient,
                   part_size, tuple(part_hashes))


def _agreement(check: Checker, value: object) -> AgreementRef:
    if not isinstance(value, dict):
        check.add('must name the data sharing agreement: {"id": ..., "version": ..., "sha256": ...}', "agreement")
        return AgreementRef("", 0, "")
    check.fields(value, _AGREEMENT_FIELDS, "agreement.", "agreement reference")
    agreement_id = check.field(value, "id", _agreement_id, "agreement.")
    version = check.field(value, "version", _agreement_version, "agreement.")
    sha256 = check.field(value, "sha256", sha256_hex, "agreement.")
    return AgreementRef(agreement_id, version, sha256)


def _holding(check: Checker, value: object) -> HoldingInfo:
    if not isinstance(value, dict):
        check.add("must be an object describing the holding", "holding")
        return HoldingInfo("", "", "", "", None, None, "")
    check.fields({k: v for k, v in value.items() if k not in _OPTIONAL_HOLDING_FIELDS}, _HOLDING_FIELDS, "holding.",
                 "holding description")
    hid = check.field(value, "id", holding_id, "holding.")
    kind = check.field(value, "kind", _kind, "holding.")
    name = check.field(value, "name", lambda v: text_line(v, MAX_NAME), "holding.")
    media_type = check.field(value, "media_type", _media_type, "holding.")
    classification = check.field(value, "classification", _classification, "holding.")
    rows, columns = value.get("rows"), value.get("columns")
    if kind == DOCUMENT:
        if rows is not None:
            check.add("must be null for a document", "holding.rows")
        if columns is not None:
            check.add("must be null for a document", "holding.columns")
        if value.get("quality") is not None:
            check.add("must be null for a document: documents have no quality summary", "holding.quality")
        return HoldingInfo(hid, kind, name, media_type, None, None, classification)
    if kind == DATASET:
        if media_type is not None and media_type != PARQUET_MEDIA_TYPE:
            check.add(f"must be {PARQUET_MEDIA_TYPE} for a dataset", "holding.media_type")
        rows = check.field(value, "rows", byte_count, "holding.")
        described = _columns(check, columns)
        quality = check_quality(check, value.get("quality"), rows=rows, columns=[c["name"] for c in described])
        return HoldingInfo(hid, kind, name, media_type, rows, described, classification, quality)
    return HoldingInfo(hid, kind, name, media_type, None, None, classification)


def _columns(check: Checker, value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        check.add("must be a list of the dataset's columns", "holding.columns")
        return []
    if len(value) > MAX_COLUMNS:
        check.add(f"lists {len(value)} columns; at most {MAX_COLUMNS} are accepted", "holding.columns")
        return []
    columns: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, column in enumerate(value):
        path = f"holding.columns[{i}]"
        if not isinstance(column, dict):
            check.add('must be {"name": ..., "type": "string"}', path)
            continue
        check.fields(column, ("name", "type"), path + ".", "column")
        name = check.field(column, "name", lambda v: text_line(v, MAX_COLUMN_NAME, strip=False), path + ".")
        if column.get("type") != "string":
            check.add('must be "string": every column of a dataset is text', path + ".type")
        if name is not None:
            if name in seen:
                check.add(f"repeats the column name {name!r}", path + ".name")
            seen.add(name)
            columns.append({"name": name, "type": "string"})
    return columns


def _parts(check: Checker, value: object) -> tuple[int, list[str]]:
    if not isinstance(value, dict):
        check.add("must be an object with the part size and the sha256 of every part", "parts")
        return 0, []
    check.fields(value, ("size", "sha256"), "parts.", "parts description")
    size = value.get("size")
    if type(size) is not int or not 0 < size <= MAX_PART_SIZE:
        check.add(f"must be a whole number of bytes from 1 to {MAX_PART_SIZE}", "parts.size")
    hashes = value.get("sha256")
    if not isinstance(hashes, list) or not hashes:
        check.add("must list the sha256 of every part", "parts.sha256")
        return 0, []
    if len(hashes) > MAX_PARTS:
        check.add(f"lists {len(hashes)} parts; at most {MAX_PARTS:,} are accepted", "parts.sha256")
        return 0, []
    for i, item in enumerate(hashes):
        if not isinstance(item, str) or not SHA256_RE.fullmatch(item):
            check.add("must be 64 lower-case hex digits", f"parts.sha256[{i}]")
    return (size if type(size) is int else 0), hashes


# Field checks, shared with the receipt. Each returns the value or raises InvalidInput. -----------


def _kind(value: object) -> str:
    if value not in (DATASET, DOCUMENT):
        raise InvalidInput('must be "dataset" or "document"')
    assert isinstance(value, str)
    return value


def _media_type(value: object) -> str:
    if not isinstance(value, str) or not MEDIA_TYPE_RE.fullmatch(value):
        raise InvalidInput("must be a media type such as application/pdf")
    return value


def _agreement_id(value: object) -> str:
    if not isinstance(value, str) or not AGREEMENT_RE.fullmatch(value):
        raise InvalidInput("must be the id of a data sharing agreement, such as DSA-2026-0001")
    return value


def _agreement_version(value: object) -> int:
    if type(value) is not int or not 0 < value <= MAX_AGREEMENT_VERSION:
        raise InvalidInput("must be the agreement's version number, a whole number from 1")
    return value


def _classification(value: object) -> str:
    if value not in CLASSIFICATIONS:
        raise InvalidInput(f"must be one of {', '.join(CLASSIFICATIONS)}")
    assert isinstance(value, str)
    return value


# Signing and reading -------------------------------------------------------------------------------


def sign_manifest(manifest: Manifest, key_id_hint: str, sign: Signer) -> dict[str, Any]:
    """The signed manifest document; the body is checked to read back before it is signed."""
    body = manifest.to_body()
    if Manifest.from_body(body) != manifest:
        raise UsageError("This manifest does not survive being written out; it was built wrongly.")
    document = sign_document(MANIFEST, body, key_id_hint, sign)
    if len(canonical_json(document)) > MAX_MANIFEST_BYTES:
        raise TooLarge(f"This manifest would be larger than {MAX_MANIFEST_BYTES:,} bytes.")
    return document


def peek_manifest(data: str | bytes | dict[str, Any]) -> Manifest:
    """The manifest as it claims to be, WITHOUT checking its signature.

    Only for learning the claimed sender, so its key can be looked up and ``parse_manifest`` called.
    Never act on anything else it says: anyone could have written it.
    """
    return Manifest.from_body(document_body(MANIFEST, read_document(data, MANIFEST, MAX_MANIFEST_BYTES)))


def parse_manifest(data: str | bytes | dict[str, Any], *, sender_key: bytes) -> tuple[Manifest, dict[str, Any]]:
    """Read a signed manifest and verify it with the sender's Ed25519 key; returns it and its document.

    TooLarge or InvalidInput when malformed; SecurityError when the signature does not verify.
    """
    document = read_document(data, MANIFEST, MAX_MANIFEST_BYTES)
    manifest = Manifest.from_body(document_body(MANIFEST, document))
    verify_document(MANIFEST, document, sender_key)
    return manifest, document


def manifest_sha256(document: dict[str, Any]) -> str:
    """The SHA-256 (hex) of the canonical JSON of a signed manifest document, as receipts quote it."""
    return hashlib.sha256(canonical_json(document)).hexdigest()
