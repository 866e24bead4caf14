"""The data sharing agreement: what the ICO Data Sharing Code asks an agreement to say.

An agreement is a version 1 document. Its canonical JSON (civicshare.canonical) is the one spelling
every party holds, and the SHA-256 of that spelling (``agreement_hash``) is what identifies it and what
signatures will cover. Any change to any field, however small, is a different agreement with another
hash; layout, key order and comments in the file it was read from are not.

Optional fields that are left out are absent from the canonical form too, so an agreement written
before a field existed keeps its bytes, its hash and its signatures.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from civicshare.canonical import canonical_json

AGREEMENT_VERSION = 1
MAX_AGREEMENT_BYTES = 256 * 1024

CONTROLLER, JOINT_CONTROLLER, PROCESSOR = "controller", "joint_controller", "processor"
PARTY_ROLES = (CONTROLLER, JOINT_CONTROLLER, PROCESSOR)

OFFICIAL, OFFICIAL_SENSITIVE = "OFFICIAL", "OFFICIAL-SENSITIVE"
CLASSIFICATIONS = (OFFICIAL, OFFICIAL_SENSITIVE)

# UK GDPR Article 6(1): the lawful bases, by their letter.
LAWFUL_BASES = {
    "a": "consent",
    "b": "contract",
    "c": "legal obligation",
    "d": "vital interests",
    "e": "public task",
    "f": "legitimate interests",
}

# UK GDPR Article 9(2): the conditions for processing special category data, by their letter.
ARTICLE_9_CONDITIONS = {
    "a": "explicit consent",
    "b": "employment, social security and social protection law",
    "c": "vital interests",
    "d": "not-for-profit bodies",
    "e": "made public by the data subject",
    "f": "legal claims or judicial acts",
    "g": "substantial public interest",
    "h": "health or social care",
    "i": "public health",
    "j": "archiving, research and statistics",
}

DATASET, DOCUMENTS = "dataset", "documents"

# The fields of a version 1 agreement, in the order a person reads them.
FIELDS = ("version", "id", "agreement_version", "parties", "provider", "recipients", "purpose", "lawful_basis",
          "legal_power", "special_category_data", "article_9_condition", "data_items", "classification",
          "minimum_quality", "onward_sharing", "retention", "start_date", "end_date", "review_date",
          "dpia_reference", "contacts", "signatories")
OPTIONAL_FIELDS = frozenset({"id", "agreement_version", "legal_power", "article_9_condition", "minimum_quality"})
# The quality score (0 to 100, civicshare.schemas.quality) a dataset must reach to be shared.
MIN_QUALITY, MAX_QUALITY = 0, 100


@dataclass(frozen=True)
class Party:
    org: str
    name: str
    role: str

    def to_body(self) -> dict[str, Any]:
        return {"org": self.org, "name": self.name, "role": self.role}


@dataclass(frozen=True)
class Contact:
    org: str
    name: str
    email: str

    def to_body(self) -> dict[str, Any]:
        return {"org": self.org, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class Signatory:
    """Who signs for a party: a person, their job title, and the organisation they sign for."""

    org: str
    name: str
    role: str

    def to_body(self) -> dict[str, Any]:
        return {"org": self.org, "name": self.name, "role": self.role}


@dataclass(frozen=True)
class DatasetItems:
    """A dataset: the fields the provider holds (its schema) and the exact fields that may be shared."""

    dataset: str
    schema: tuple[str, ...]
    fields: tuple[str, ...]

    kind = DATASET

    def to_body(self) -> dict[str, Any]:
        return {"kind": DATASET, "dataset": self.dataset, "schema": list(self.schema), "fields": list(self.fields)}


@dataclass(frozen=True)
class DocumentItems:
    """Documents: the media types allowed, and the kinds of document in words (letters, assessments)."""

    media_types: tuple[str, ...]
    document_types: tuple[str, ...] = ()

    kind = DOCUMENTS

    def to_body(self) -> dict[str, Any]:
        return {"kind": DOCUMENTS, "media_types": list(self.media_types),
                "document_types": list(self.document_types)}


DataItems = DatasetItems | DocumentItems


def date_text(day: date) -> str:
    return day.isoformat()


@dataclass(frozen=True)
class Agreement:
    """One version of a data sharing agreement, checked (see civicshare.agreements.validate).

    ``id`` is None only before the register numbers it, and ``agreement_version`` None only before the
    register gives it the next version number.
    """

    id: str | None
    agreement_version: int | None
    parties: tuple[Party, ...]
    provider: str
    recipients: tuple[str, ...]
    purpose: str
    lawful_basis: str
    legal_power: str | None
    special_category_data: bool
    article_9_condition: str | None
    data_items: DataItems
    classification: str
    onward_sharing: bool
    # Days after receipt, or None: kept until the agreement ends.
    retention_days: int | None
    start_date: date
    end_date: date
    review_date: date
    dpia_reference: str
    contacts: tuple[Contact, ...]
    signatories: tuple[Signatory, ...]
    # Datasets only: the lowest quality score a share may have; None sets no minimum.
    minimum_quality: int | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": AGREEMENT_VERSION,
            "id": self.id,
            "agreement_version": self.agreement_version,
            "parties": [p.to_body() for p in self.parties],
            "provider": self.provider,
            "recipients": list(self.recipients),
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
            "legal_power": self.legal_power,
            "special_category_data": self.special_category_data,
            "article_9_condition": self.article_9_condition,
            "data_items": self.data_items.to_body(),
            "classification": self.classification,
            "onward_sharing": self.onward_sharing,
            "retention": ({"until_agreement_end": True} if self.retention_days is None
                          else {"days_after_receipt": self.retention_days}),
            "start_date": date_text(self.start_date),
            "end_date": date_text(self.end_date),
            "review_date": date_text(self.review_date),
            "dpia_reference": self.dpia_reference,
            "contacts": [c.to_body() for c in self.contacts],
            "signatories": [s.to_body() for s in self.signatories],
        }
        if self.minimum_quality is not None:
            # Only when set: agreements without it keep the canonical bytes they were signed with.
            body["minimum_quality"] = self.minimum_quality
        return body

    def canonical(self) -> bytes:
        """The canonical JSON bytes every party holds and signatures cover."""
        return canonical_json(self.to_body())

    @property
    def agreement_hash(self) -> str:
        """SHA-256 of the canonical form, 64 lower-case hex digits: the agreement's identity."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def content_hash(self) -> str:
        """SHA-256 of what the agreement says, leaving out its id and version number.

        Two versions that say the same thing have the same content hash; the register uses it to refuse
        creating an agreement that is already there.
        """
        body = self.to_body()
        body["id"] = None
        body["agreement_version"] = None
        return hashlib.sha256(canonical_json(body)).hexdigest()

    @property
    def party_ids(self) -> tuple[str, ...]:
        return tuple(p.org for p in self.parties)

    def party(self, org_id: str) -> Party | None:
        return next((p for p in self.parties if p.org == org_id), None)

    def retention_words(self) -> str:
        if self.retention_days is None:
            return "until the agreement ends"
        return f"{self.retention_days} days after receipt"

    def lawful_basis_words(self) -> str:
        return f"Article 6(1)({self.lawful_basis}) {LAWFUL_BASES[self.lawful_basis]}"

    def numbered(self, agreement_id: str, version: int) -> Agreement:
        """The same agreement with the id and version number the register gave it."""
        return replace(self, id=agreement_id, agreement_version=version)
