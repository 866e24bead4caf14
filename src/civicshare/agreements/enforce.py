"""The rules of a data sharing agreement, as civicshare enforces them at every step.

Pure functions over an agreement (and its register record) and the facts of a holding, whether held
here or described by a manifest. Each rule that is not met raises AgreementRefused with the rule and
the reason in plain words; the callers (share, arrival, later access) audit the refusal.

- Share (provider): the agreement is active, names this organisation as provider and the partner as a
  recipient, covers the holding (the dataset by name, or the document's media type), allows its
  classification; a dataset carries only the agreed fields it has (minimisation before sealing).
  A dataset's quality score must reach the agreement's ``minimum_quality``, where it sets one.
- Arrival (recipient): the same, independently, and every column that arrived must be agreed; the
  quality score is the one the manifest's summary states, and a dataset without one is refused.
- Later access to a received holding (view, export, onward share): its agreement is still active,
  and an onward share is allowed by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from civicshare.agreements.model import CLASSIFICATIONS, Agreement, DatasetItems, DocumentItems
from civicshare.errors import AgreementRefused, UsageError

if TYPE_CHECKING:
    from civicshare.agreements.register import AgreementRecord

VIEW, EXPORT, SHARE = "view", "export", "share"
USES = (VIEW, EXPORT, SHARE)

# The rules, as a records manager would state them; each refusal names one and says why it is not met.
RULE_NEEDED = "Every share needs a data sharing agreement"
RULE_ACTIVE = "Data moves and is used only under an active agreement"
RULE_SAME = "Both organisations must hold the same agreement"
RULE_PARTIES = "Data goes only from the agreement's provider to a recipient it names"
RULE_ITEMS = "Only the data items the agreement covers may be shared"
RULE_CLASSIFICATION = "A holding's classification must not exceed what the agreement allows"
RULE_ONWARD = "A received holding is shared onward only if its agreement allows it"
RULE_QUALITY = "A dataset is shared only if its quality score reaches the agreement's minimum"

HOLDING_DATASET, HOLDING_DOCUMENT = "dataset", "document"


@dataclass(frozen=True)
class HoldingFacts:
    """What the rules look at in a holding: held here, or as a manifest describes it."""

    kind: str
    name: str
    media_type: str
    columns: tuple[str, ...] | None
    classification: str
    # The dataset's quality score, 0 to 100 (its report here, the manifest's summary on arrival).
    quality_score: float | None = None


def _named(agreement: Agreement) -> str:
    return f"agreement {agreement.id}"


def _words(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


def classification_rank(classification: str) -> int:
    """OFFICIAL < OFFICIAL-SENSITIVE; an unknown marking ranks above every known one."""
    return CLASSIFICATIONS.index(classification) if classification in CLASSIFICATIONS else len(CLASSIFICATIONS)


# Single rules ------------------------------------------------------------------------------------


def require_agreement(agreement_id: str | None) -> str:
    """The agreement id a share names; refused when there is none."""
    if agreement_id is None or not agreement_id.strip():
        raise AgreementRefused(RULE_NEEDED, "none was named; give the id of an active agreement with --agreement")
    return agreement_id.strip()


def require_active(record: AgreementRecord) -> None:
    """Active: signed by every party, started, not ended, revoked or superseded."""
    words = record.stop_words()
    if words is not None:
        raise AgreementRefused(RULE_ACTIVE, words)


def check_parties(agreement: Agreement, provider: str, recipient: str) -> None:
    if agreement.provider != provider:
        raise AgreementRefused(RULE_PARTIES, f"{provider} is not the provider under {_named(agreement)} "
                                             f"({agreement.provider} is)")
    if recipient not in agreement.recipients:
        raise AgreementRefused(RULE_PARTIES, f"{recipient} is not a recipient under {_named(agreement)} "
                                             f"(its recipients: {_words(agreement.recipients)})")


def check_classification(agreement: Agreement, classification: str) -> None:
    if classification_rank(classification) > classification_rank(agreement.classification):
        raise AgreementRefused(RULE_CLASSIFICATION, f"this holding is {classification}; {_named(agreement)} "
                                                    f"allows {agreement.classification} only")


def check_covers(agreement: Agreement, holding: HoldingFacts) -> None:
    """The agreement's data items cover the holding: the dataset by name, or the document's media type."""
    items = agreement.data_items
    if holding.kind == HOLDING_DATASET:
        if not isinstance(items, DatasetItems):
            raise AgreementRefused(RULE_ITEMS, f"{_named(agreement)} covers documents, not datasets")
        if holding.name.casefold() != items.dataset.casefold():
            raise AgreementRefused(RULE_ITEMS, f"{_named(agreement)} covers the dataset {items.dataset!r}, "
                                               f"not {holding.name!r}")
        return
    if holding.kind != HOLDING_DOCUMENT:
        raise UsageError(f"A holding is a dataset or a document, not {holding.kind!r}.")
    if not isinstance(items, DocumentItems):
        raise AgreementRefused(RULE_ITEMS, f"{_named(agreement)} covers the dataset {items.dataset!r}, "
                                           "not documents")
    allowed = tuple(m.lower() for m in items.media_types)
    if holding.media_type.lower() not in allowed:
        raise AgreementRefused(RULE_ITEMS, f"documents of type {holding.media_type} are not allowed under "
                                           f"{_named(agreement)} (allowed: {_words(items.media_types)})")


def check_quality(agreement: Agreement, holding: HoldingFacts, *, arriving: bool = False) -> None:
    """A dataset's quality score reaches the agreement's minimum, if it sets one (documents have none)."""
    minimum = agreement.minimum_quality
    if minimum is None or holding.kind != HOLDING_DATASET:
        return
    score = holding.quality_score
    if score is None:
        where = "the manifest carries no quality summary" if arriving else "its quality score is not known"
        raise AgreementRefused(RULE_QUALITY, f"{where} for {holding.name}; {_named(agreement)} requires a "
                                             f"score of at least {minimum}")
    if score < minimum:
        raise AgreementRefused(RULE_QUALITY, f"the quality score of {holding.name} is {score:g}; "
                                             f"{_named(agreement)} requires at least {minimum}")


def agreed_columns(agreement: Agreement, holding: HoldingFacts) -> list[str]:
    """Minimisation: the holding's columns that the agreement allows, in the holding's order.

    Agreed fields the holding lacks are simply not sent; refused when none of its columns is agreed.
    """
    items = agreement.data_items
    assert isinstance(items, DatasetItems) and holding.columns is not None
    chosen = [c for c in holding.columns if c in items.fields]
    if not chosen:
        raise AgreementRefused(RULE_ITEMS, f"none of the fields of {holding.name!r} is in the agreed data items "
                                           f"of {_named(agreement)} (agreed: {_words(items.fields)})")
    return chosen


def check_columns(agreement: Agreement, columns: tuple[str, ...]) -> None:
    """Every column is an agreed field (what the recipient checks of what arrived)."""
    items = agreement.data_items
    assert isinstance(items, DatasetItems)
    extra = [c for c in columns if c not in items.fields]
    if len(extra) == 1:
        raise AgreementRefused(RULE_ITEMS, f"field {extra[0]} is not in the agreed data items of "
                                           f"{_named(agreement)}")
    if extra:
        raise AgreementRefused(RULE_ITEMS, f"fields {_words(extra)} are not in the agreed data items of "
                                           f"{_named(agreement)}")


# The checks at each step -----------------------------------------------------------------------


def check_share(record: AgreementRecord, provider: str, recipient: str, holding: HoldingFacts) -> list[str] | None:
    """May ``provider`` share ``holding`` with ``recipient`` under this agreement now?

    Returns the columns to seal for a dataset (the agreed ones it has, in its order), None for a
    document. AgreementRefused names the first rule not met.
    """
    agreement = record.agreement
    require_active(record)
    check_parties(agreement, provider, recipient)
    check_covers(agreement, holding)
    check_classification(agreement, holding.classification)
    check_quality(agreement, holding)
    if holding.kind == HOLDING_DATASET:
        return agreed_columns(agreement, holding)
    return None


def check_arrival(record: AgreementRecord | None, agreement_id: str, version: int, sender: str, recipient: str,
                  holding: HoldingFacts) -> AgreementRecord:
    """The recipient's own check of what a manifest says arrives under ``agreement_id`` ``version``.

    ``record`` is the recipient's register entry with the manifest's agreement hash (None if it holds
    none). Returns it once every rule is met.
    """
    if record is None:
        raise AgreementRefused(RULE_SAME, f"{recipient} holds no agreement {agreement_id} version {version} with "
                                          f"the hash the manifest names; {sender} and {recipient} must both "
                                          "sign it first")
    if record.id != agreement_id or record.version != version:
        raise AgreementRefused(RULE_SAME, f"the manifest names agreement {agreement_id} version {version}, but "
                                          f"that hash is agreement {record.id} version {record.version} here")
    agreement = record.agreement
    require_active(record)
    check_parties(agreement, sender, recipient)
    check_covers(agreement, holding)
    if holding.kind == HOLDING_DATASET:
        check_columns(agreement, holding.columns or ())
    check_classification(agreement, holding.classification)
    check_quality(agreement, holding, arriving=True)
    return record


def check_use(record: AgreementRecord | None, use: str, *, agreement_id: str | None = None) -> None:
    """May a holding received under ``record`` be used (``view``, ``export`` or ``share`` onward) now?

    ``record`` None means the agreement it arrived under (``agreement_id``) is not in the register.
    """
    if use not in USES:
        raise UsageError(f"Unknown use {use!r} of a holding: {', '.join(USES)}.")
    if record is None:
        if agreement_id is not None:
            raise AgreementRefused(RULE_ACTIVE, f"this holding arrived under agreement {agreement_id}, which is "
                                                "not in this organisation's register")
        if use == SHARE:
            raise AgreementRefused(RULE_ONWARD, "this holding arrived under no agreement, so none allows "
                                                "sharing it onward")
        return  # arrived before agreements were enforced: the organisation's own to use, not to pass on
    require_active(record)
    if use == SHARE and not record.agreement.onward_sharing:
        raise AgreementRefused(RULE_ONWARD, f"onward sharing is not allowed under {_named(record.agreement)}")
