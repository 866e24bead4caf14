"""The enforcement rules as pure functions over agreements and the facts of a holding.

The checks that need an agreement's state (active, expired, revoked) run against a real register in
test_enforce_share.py and test_enforce_access.py; here every single rule is driven directly.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from civicshare.agreements import parse_agreement
from civicshare.agreements.enforce import (
    RULE_CLASSIFICATION,
    RULE_ITEMS,
    RULE_NEEDED,
    RULE_ONWARD,
    RULE_PARTIES,
    HoldingFacts,
    agreed_columns,
    check_classification,
    check_columns,
    check_covers,
    check_parties,
    check_use,
    classification_rank,
    require_agreement,
)
from civicshare.agreements.model import Agreement, DatasetItems, DocumentItems
from civicshare.errors import AgreementRefused, UsageError
from tests.agreements.support import NORTH, SOUTH, good_yaml

EAST = "east-marsh"


def _agreement(**changes: object) -> Agreement:
    agreement = parse_agreement(good_yaml()).numbered("DSA-2026-0001", 1)
    return replace(agreement, **changes)


def _dataset(name: str = "Tenants", columns: tuple[str, ...] = ("uprn", "name", "nhs_number", "tenancy_start"),
             classification: str = "OFFICIAL") -> HoldingFacts:
    return HoldingFacts("dataset", name, "application/vnd.apache.parquet", columns, classification)


def _document(media_type: str = "application/pdf", classification: str = "OFFICIAL") -> HoldingFacts:
    return HoldingFacts("document", "Care plan", media_type, None, classification)


def _refused(call: object, *args: object) -> AgreementRefused:
    with pytest.raises(AgreementRefused) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code == "agreement_refused" and caught.value.http_status == 403
    return caught.value


def test_a_share_must_name_an_agreement() -> None:
    for missing in (None, "", "  "):
        refused = _refused(require_agreement, missing)
        assert refused.rule == RULE_NEEDED and "--agreement" in refused.reason
    assert require_agreement(" DSA-2026-0001 ") == "DSA-2026-0001"


def test_the_message_gives_the_rule_and_the_reason() -> None:
    refused = _refused(check_parties, _agreement(), NORTH, EAST)
    assert refused.message == (f"{RULE_PARTIES}: east-marsh is not a recipient under agreement DSA-2026-0001 "
                               "(its recipients: south-fen).")
    body = refused.to_json()["error"]
    assert (body["code"], body["rule"], body["reason"]) == ("agreement_refused", refused.rule, refused.reason)


def test_only_the_provider_shares_and_only_with_a_named_recipient() -> None:
    agreement = _agreement()
    check_parties(agreement, NORTH, SOUTH)
    assert "south-fen is not the provider under agreement DSA-2026-0001 (north-wold is)" in _refused(
        check_parties, agreement, SOUTH, NORTH).reason
    assert _refused(check_parties, agreement, NORTH, EAST).reason.startswith(
        "east-marsh is not a recipient under agreement DSA-2026-0001")
    check_parties(replace(agreement, recipients=(SOUTH, EAST)), NORTH, EAST)


def test_a_dataset_is_covered_by_name_whatever_its_case() -> None:
    agreement = _agreement()
    check_covers(agreement, _dataset("Tenants"))
    check_covers(agreement, _dataset("TENANTS"))
    refused = _refused(check_covers, agreement, _dataset("Residents"))
    assert refused.rule == RULE_ITEMS
    assert refused.reason == "agreement DSA-2026-0001 covers the dataset 'tenants', not 'Residents'"
    assert _refused(check_covers, agreement, _document()).reason == (
        "agreement DSA-2026-0001 covers the dataset 'tenants', not documents")


def test_documents_are_covered_by_media_type() -> None:
    agreement = _agreement(data_items=DocumentItems(("application/pdf", "image/png"), ("care plans",)))
    check_covers(agreement, _document("application/pdf"))
    check_covers(agreement, _document("Image/PNG"))  # media types are not case-sensitive
    refused = _refused(check_covers, agreement, _document("application/msword"))
    assert refused.reason == ("documents of type application/msword are not allowed under agreement "
                              "DSA-2026-0001 (allowed: application/pdf, image/png)")
    assert _refused(check_covers, agreement, _dataset()).reason == (
        "agreement DSA-2026-0001 covers documents, not datasets")
    with pytest.raises(UsageError):
        check_covers(agreement, HoldingFacts("spreadsheet", "x", "text/csv", None, "OFFICIAL"))


def test_classification_must_not_exceed_the_agreement() -> None:
    official = _agreement()
    sensitive = _agreement(classification="OFFICIAL-SENSITIVE")
    assert classification_rank("OFFICIAL") < classification_rank("OFFICIAL-SENSITIVE") < classification_rank("SECRET")
    check_classification(official, "OFFICIAL")
    check_classification(sensitive, "OFFICIAL")
    check_classification(sensitive, "OFFICIAL-SENSITIVE")
    refused = _refused(check_classification, official, "OFFICIAL-SENSITIVE")
    assert refused.rule == RULE_CLASSIFICATION
    assert refused.reason == "this holding is OFFICIAL-SENSITIVE; agreement DSA-2026-0001 allows OFFICIAL only"
    assert "this holding is SECRET" in _refused(check_classification, sensitive, "SECRET").reason


def test_minimisation_keeps_the_agreed_fields_in_the_holdings_order() -> None:
    agreement = _agreement()  # fields uprn, name, tenancy_start
    assert agreed_columns(agreement, _dataset(columns=("tenancy_start", "nhs_number", "uprn", "name"))) == [
        "tenancy_start", "uprn", "name"]
    # An agreed field the holding lacks is simply not sent.
    assert agreed_columns(agreement, _dataset(columns=("nhs_number", "name"))) == ["name"]
    # Field names are exact: another spelling is another field.
    refused = _refused(agreed_columns, agreement, _dataset(columns=("NHS_number", "Name")))
    assert refused.reason == ("none of the fields of 'Tenants' is in the agreed data items of agreement "
                              "DSA-2026-0001 (agreed: uprn, name, tenancy_start)")


def test_arrived_columns_must_all_be_agreed() -> None:
    agreement = _agreement()
    check_columns(agreement, ("uprn", "name"))
    assert _refused(check_columns, agreement, ("uprn", "nhs_number")).reason == (
        "field nhs_number is not in the agreed data items of agreement DSA-2026-0001")
    assert _refused(check_columns, agreement, ("date_of_birth", "uprn", "nhs_number")).reason == (
        "fields date_of_birth, nhs_number are not in the agreed data items of agreement DSA-2026-0001")


def test_use_of_a_holding_that_arrived_under_no_agreement() -> None:
    # Received before agreements were enforced: the organisation may use it, never pass it on.
    check_use(None, "view")
    check_use(None, "export")
    assert _refused(check_use, None, "share").rule == RULE_ONWARD
    # Received under an agreement the register no longer holds: nothing at all.
    for use in ("view", "export", "share"):
        assert "DSA-2026-0009, which is not in this organisation's register" in _refused(
            lambda u: check_use(None, u, agreement_id="DSA-2026-0009"), use).reason
    with pytest.raises(UsageError, match="Unknown use 'print'"):
        check_use(None, "print")


def test_dataset_items_without_the_holdings_name_case() -> None:
    # A schema field spelled differently from the holding's column is a different field.
    agreement = _agreement(data_items=DatasetItems("Tenants", ("UPRN", "name"), ("UPRN",)))
    assert agreed_columns(agreement, _dataset(columns=("UPRN", "uprn"))) == ["UPRN"]
