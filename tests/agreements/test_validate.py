"""Every validation rule: all problems at once, each with its field path, file and line."""

from __future__ import annotations

import json

import pytest

from civicshare.agreements import parse_agreement
from civicshare.agreements.model import DatasetItems, DocumentItems
from civicshare.errors import InvalidInput, TooLarge
from tests.agreements.support import good_yaml


def edit(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def problems(text: str, filename: str = "dsa.yaml") -> list[tuple[str | None, int | None, str]]:
    with pytest.raises(InvalidInput) as caught:
        parse_agreement(text, filename=filename)
    assert all(p.file == filename for p in caught.value.problems)
    return [(p.field, p.line, p.message) for p in caught.value.problems]


def located(text: str) -> list[tuple[str | None, int | None]]:
    return [(f, line) for f, line, _m in problems(text)]


def test_the_template_validates_as_it_stands() -> None:
    agreement = parse_agreement(good_yaml(), filename="dsa.yaml")
    assert agreement.data_items == DatasetItems("tenants", ("uprn", "name", "date_of_birth", "nhs_number",
                                                            "tenancy_start"), ("uprn", "name", "tenancy_start"))
    assert (agreement.id, agreement.agreement_version, agreement.lawful_basis) == (None, None, "e")
    assert agreement.retention_days == 365 and not agreement.onward_sharing
    documents = parse_agreement(good_yaml(dataset=None, fields=None, schema=None, documents=True))
    assert documents.data_items == DocumentItems(("application/pdf",), ())


def test_many_problems_are_reported_at_once_each_with_its_line() -> None:
    text = edit(good_yaml(),
                ("lawful_basis: e\n", ""),
                ('"name", "tenancy_start"]\n', '"name", "tenancy_start", "ethnicity"]\n'),
                ("end_date: 2027-03-31", "end_date: 2026-03-01"),
                ("special_category_data: false", "special_category_data: true"),
                ("    role: controller  # REVIEW", "    role: partner  # REVIEW"),
                ("recipients: [south-fen]", "recipients: [south-fen, east-marsh]"),
                ("classification: OFFICIAL ", "classification: SECRET "),
                ("days_after_receipt: 365", "days_after_receipt: -5"))
    found = problems(text)
    assert [(f, line) for f, line, _m in found] == [
        ("lawful_basis", 4), ("parties[1].role", 12), ("recipients[1]", 14), ("article_9_condition", 22),
        ("data_items.fields[3]", 27), ("classification", 28), ("retention.days_after_receipt", 32),
        ("end_date", 34), ("review_date", 35)]
    messages = dict(((f, m) for f, _line, m in found))
    assert "lawful basis under UK GDPR Article 6(1)" in messages["lawful_basis"]
    assert "Article 9(2) condition" in messages["article_9_condition"]
    assert messages["data_items.fields[3]"].startswith("field ethnicity is not in the schema of dataset tenants")
    assert "before the start date 2026-04-01" in messages["end_date"]
    assert "after the end date 2026-03-01" in messages["review_date"]
    assert "east-marsh is not one of the parties" in messages["recipients[1]"]
    assert "'partner' is not a role" in messages["parties[1].role"]
    assert "cannot be negative" in messages["retention.days_after_receipt"]
    assert "choose OFFICIAL or OFFICIAL-SENSITIVE" in messages["classification"]


@pytest.mark.parametrize(("changes", "expected", "words"), [
    ([("version: 1", "version: 2")], [("version", 4)], "version 1 agreements"),
    ([("version: 1\n", "version: 1\nshare_everything: true\n")], [("share_everything", 5)], "not a field"),
    ([("# id: DSA-2026-0001", "id: DSA 2026/1")], [("id", 5)], "letters, digits"),
    ([("# id: DSA-2026-0001", "agreement_version: 0")], [("agreement_version", 5)], "whole number"),
    ([("  - org: south-fen\n    name: \"South", "  - org: North Wold\n    name: \"South")],
     [("parties[1].org", 10), ("recipients[0]", 14), ("contacts[1].org", 43), ("signatories[1].org", 51)],
     "organisation id"),
    ([("  - org: south-fen\n    name: \"South", "  - org: north-wold\n    name: \"South")],
     [("parties[1].org", 10), ("recipients[0]", 14), ("contacts[1].org", 43), ("signatories[1].org", 51)],
     "names north-wold a second time"),
    ([("    role: controller  # controller,", "    role: processor  # controller,"),
      ("    role: controller  # REVIEW", "    role: processor  # REVIEW")], [("parties", 6)],
     "no controller or joint controller"),
    ([("provider: north-wold", "provider: east-marsh")], [("provider", 13)], "not one of the parties"),
    ([("recipients: [south-fen]", "recipients: [north-wold]")], [("recipients[0]", 14)], "is the provider"),
    ([("recipients: [south-fen]", "recipients: []")], [("recipients", 14)], "empty list"),
    ([('purpose: "To be written: why north-wold shares this data with south-fen."', 'purpose: ""')],
     [("purpose", 16)], "must not be empty"),
    ([("lawful_basis: e", "lawful_basis: g")], [("lawful_basis", 18)], "not a letter of UK GDPR Article 6(1)"),
    ([("special_category_data: false", "special_category_data: false\narticle_9_condition: h")],
     [("article_9_condition", 24)], "special_category_data is false"),
    ([("special_category_data: false", "special_category_data: true\narticle_9_condition: k")],
     [("article_9_condition", 24)], "Article 9(2)"),
    ([("special_category_data: false", "special_category_data: maybe")], [("special_category_data", 23)],
     "true or false"),
    ([('  fields: ["uprn", "name", "tenancy_start"]', '  fields: ["uprn", "uprn"]')],
     [("data_items.fields[1]", 28)], "twice"),
    ([('  dataset: "tenants"\n', "")], [("data_items.dataset", 24)], "is missing"),
    ([('  dataset: "tenants"\n', '  dataset: "tenants"\n  kind: spreadsheet\n')], [("data_items.kind", 26)],
     "dataset or documents"),
    ([("classification: OFFICIAL ", "classification: official ")], [("classification", 29)], "OFFICIAL"),
    ([("onward_sharing: false", "onward_sharing: null")], [("onward_sharing", 30)], "true or false"),
    ([("  days_after_receipt: 365", "  days_after_receipt: 0")], [("retention.days_after_receipt", 33)],
     "at least 1 day"),
    ([("  days_after_receipt: 365", "  days_after_receipt: 365\n  until_agreement_end: true")],
     [("retention", 32)], "either"),
    ([("  days_after_receipt: 365", "  weeks: 3")], [("retention.weeks", 33)], "not a kind of retention"),
    ([("start_date: 2026-04-01", "start_date: 2026-02-30")], [("start_date", 34)], "date"),
    ([("start_date: 2026-04-01", "start_date: 2026-04-01T09:00:00Z")], [("start_date", 34)], "without a time"),
    ([("end_date: 2027-03-31", "end_date: 2026-04-01"), ("review_date: 2026-12-31", "review_date: 2026-04-01")],
     [("end_date", 35)], "the same day as the start"),
    ([("review_date: 2026-12-31", "review_date: 2026-01-01")], [("review_date", 36)], "before the start date"),
    ([('dpia_reference: "DPIA to be confirmed"', "dpia_reference:")], [("dpia_reference", 37)], "empty"),
    ([('    email: "dpo@south-fen.invalid"', '    email: "dpo at south-fen"')], [("contacts[1].email", 45)],
     "not an email address"),
    ([('  - org: south-fen\n    name: "To be named"\n    email: "dpo@south-fen.invalid"\n', "")],
     [("contacts", 39)], "no contact for south-fen"),
    ([('    role: "Senior Information Risk Owner"\n  - org: south-fen\n    name: "To be named"\n'
       '    role: "Senior Information Risk Owner"\n', '    role: "Senior Information Risk Owner"\n')],
     [("signatories", 47)], "no signatory for south-fen"),
    ([('  - org: north-wold\n    name: "To be named"\n    role: "Senior',
       '  - org: east-marsh\n    name: "To be named"\n    role: "Senior')],
     [("signatories", 47), ("signatories[0].org", 48)], "signatory for north-wold"),
    ([('    name: "North Wold District Council"', '    name: "North Wold\\nDistrict Council"')],
     [("parties[0].name", 8)], "one line"),
])
def test_each_rule_names_its_field_and_line(changes: list[tuple[str, str]], expected: list[tuple[str, int]],
                                            words: str) -> None:
    found = problems(edit(good_yaml(), *changes))
    assert [(f, line) for f, line, _m in found] == expected
    assert words in found[0][2]


def test_every_missing_field_is_named() -> None:
    found = problems("version: 1\nparties: []\n")
    fields = [f for f, _line, _m in found]
    assert fields == ["provider", "recipients", "purpose", "lawful_basis", "special_category_data", "data_items",
                      "classification", "onward_sharing", "retention", "start_date", "end_date", "review_date",
                      "dpia_reference", "contacts", "signatories", "parties"]


def test_documents_items_are_checked() -> None:
    text = good_yaml(dataset=None, fields=None, schema=None, documents=True)
    found = problems(edit(text, ('media_types: ["application/pdf"]', 'media_types: ["application/pdf", "a pdf"]'),
                          ("document_types: []", "document_types: [letters, letters]")))
    assert [(f, line) for f, line, _m in found] == [("data_items.media_types[1]", 26),
                                                    ("data_items.document_types[1]", 28)]
    assert "not a media type" in found[0][2]


def test_yaml_faults_are_refused_with_their_line() -> None:
    assert located(edit(good_yaml(), ("provider: north-wold", "provider: north-wold\nprovider: south-fen"))) == [
        ("provider", 14)]
    assert "first on line 13" in problems(edit(good_yaml(), ("provider: north-wold",
                                                              "provider: north-wold\nprovider: south-fen")))[0][2]
    aliased = edit(good_yaml(), ("  dataset: \"tenants\"", "  dataset: &d \"tenants\""),
                   ('dpia_reference: "DPIA to be confirmed"', "dpia_reference: *d"))
    assert located(aliased) == [("dpia_reference", 37)]
    broken = problems(edit(good_yaml(), ("recipients: [south-fen]", "recipients: [south-fen")))
    assert broken[0][0] is None and broken[0][1] is not None and "not valid YAML" in broken[0][2]
    assert located("- just\n- a list\n") == [("", 1)]
    with pytest.raises(TooLarge):
        parse_agreement("purpose: " + "x" * 300_000)
    with pytest.raises(InvalidInput, match="not UTF-8"):
        parse_agreement(b"version: 1\npurpose: \xff\n")


def test_json_is_read_strictly_with_lines() -> None:
    body = parse_agreement(good_yaml()).to_body()
    body["lawful_basis"] = "z"
    text = json.dumps(body, indent=2)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"lawful_basis"' in ln)
    found = problems(text, filename="dsa.json")
    assert [(f, ln) for f, ln, _m in found] == [("lawful_basis", line)]
    with pytest.raises(InvalidInput, match="twice"):
        parse_agreement('{"version": 1, "version": 1}', filename="dsa.json")
    with pytest.raises(InvalidInput, match="whole numbers"):
        parse_agreement('{"version": 1.0}')
