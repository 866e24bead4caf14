"""Checking an agreement: every problem at once, each with its field path and, from a file, its line.

The checks are what a records manager would ask of a paper agreement: is there a lawful basis, do the
dates make sense, is every field shared one the provider holds, is special category data covered by an
Article 9 condition, is everyone who receives data a party to the agreement, is a minimum quality
score (if one is set) a whole number from 0 to 100, for a dataset. Messages say what is
wrong in plain words; the field path (``data_items.fields[2]``) says where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from civicshare.agreements.checker import Checker
from civicshare.agreements.model import (
    AGREEMENT_VERSION,
    ARTICLE_9_CONDITIONS,
    CLASSIFICATIONS,
    CONTROLLER,
    DATASET,
    DOCUMENTS,
    FIELDS,
    JOINT_CONTROLLER,
    LAWFUL_BASES,
    MAX_QUALITY,
    MIN_QUALITY,
    OPTIONAL_FIELDS,
    PARTY_ROLES,
    Agreement,
    DataItems,
    DatasetItems,
    DocumentItems,
    Party,
)
from civicshare.agreements.people import read_contacts, read_signatories
from civicshare.errors import InvalidInput

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
MAX_PURPOSE = 4000
# A retention longer than a century is a typing mistake, not a policy.
MAX_RETENTION_DAYS = 36_500

_MISSING = {
    "parties": "is missing: name every organisation in the agreement, with its role",
    "provider": "is missing: say which party provides the data",
    "recipients": "is missing: say which parties receive the data",
    "purpose": "is missing: say in words what the data is shared for",
    "lawful_basis": "is missing: every agreement needs a lawful basis under UK GDPR Article 6(1), a letter from "
                    "a to f (for example e, public task)",
    "special_category_data": "is missing: say true if health, ethnicity or other special category data is "
                             "shared, or false",
    "data_items": "is missing: say which dataset and fields, or which kinds of document, are shared",
    "classification": "is missing: choose OFFICIAL or OFFICIAL-SENSITIVE",
    "onward_sharing": "is missing: say true if recipients may pass the data on, or false",
    "retention": "is missing: say how long recipients keep the data (days_after_receipt: N, or "
                 "until_agreement_end: true)",
    "start_date": "is missing: the date the agreement starts",
    "end_date": "is missing: the date the agreement ends",
    "review_date": "is missing: the date the agreement is next reviewed",
    "dpia_reference": "is missing: give the reference of the data protection impact assessment",
    "contacts": "is missing: name a contact at each party",
    "signatories": "is missing: name who signs for each party",
}


def check_agreement(body: Any, *, lines: Mapping[str, int] | None = None, filename: str | None = None,
                    org_id: str | None = None) -> Agreement:
    """Turn a document into an ``Agreement``, or raise InvalidInput listing every problem found.

    ``lines`` maps field paths to line numbers in the file the body came from; ``org_id``, when given,
    must be a party (an organisation keeps only agreements it is a party to).
    """
    check = Checker(lines, filename)
    where = f" in {filename}" if filename else ""
    if not isinstance(body, dict):
        check.add("must be a mapping of fields (version, parties, purpose, ...)", "")
        raise InvalidInput(f"The agreement{where} is not valid", problems=check.problems)
    for key in body:
        if key not in FIELDS:
            check.add(f"is not a field of a version {AGREEMENT_VERSION} agreement", str(key))
    for key in FIELDS:
        if key not in body and key not in OPTIONAL_FIELDS and key != "version":
            check.add(_MISSING.get(key, "is missing"), key)
    if body.get("version") != AGREEMENT_VERSION:
        check.add("is missing: write version: 1 at the top" if "version" not in body
                  else f"must be {AGREEMENT_VERSION}: this node reads version {AGREEMENT_VERSION} agreements",
                  "version")

    agreement_id = _agreement_id(check, body.get("id"))
    number = _number(check, body.get("agreement_version"))
    party_ids: set[str] | None = None
    parties = None
    if "parties" in body:
        parties, party_ids = _parties(check, body["parties"])
    provider = _provider(check, body["provider"], party_ids) if "provider" in body else None
    recipients = _recipients(check, body["recipients"], party_ids, provider) if "recipients" in body else None
    purpose = check.text(body["purpose"], "purpose", one_line=False, limit=MAX_PURPOSE) if "purpose" in body else None
    lawful_basis = _letter(check, body["lawful_basis"], "lawful_basis", LAWFUL_BASES,
                           "UK GDPR Article 6(1)") if "lawful_basis" in body else None
    legal_power = (check.text(body["legal_power"], "legal_power", limit=1000)
                   if body.get("legal_power") is not None else None)
    special = check.boolean(body["special_category_data"], "special_category_data") \
        if "special_category_data" in body else None
    condition = _condition(check, body.get("article_9_condition"), special)
    data_items = _data_items(check, body["data_items"]) if "data_items" in body else None
    classification = _classification(check, body["classification"]) if "classification" in body else None
    minimum_quality = (_minimum_quality(check, body["minimum_quality"], data_items)
                       if body.get("minimum_quality") is not None else None)
    onward = check.boolean(body["onward_sharing"], "onward_sharing") if "onward_sharing" in body else None
    retention = _retention(check, body["retention"]) if "retention" in body else None
    start, end, review = (check.day(body[k], k) if k in body else None
                          for k in ("start_date", "end_date", "review_date"))
    _dates(check, start, end, review)
    dpia = check.text(body["dpia_reference"], "dpia_reference") if "dpia_reference" in body else None
    contacts = read_contacts(check, body["contacts"], party_ids) if "contacts" in body else None
    signatories = read_signatories(check, body["signatories"], party_ids) if "signatories" in body else None
    if org_id is not None and party_ids is not None and org_id not in party_ids:
        check.add(f"does not name {org_id}, the organisation adding it; an organisation keeps only agreements "
                  "it is a party to", "parties")

    if check.problems:
        count = len(check.problems)
        # In the order of the file, as a person reading it down would meet them.
        ordered = sorted(check.problems, key=lambda p: (p.line is None, p.line or 0))
        raise InvalidInput(f"The agreement{where} is not valid ({count} problem{'s' if count > 1 else ''})",
                           problems=ordered)
    assert parties is not None and provider is not None and recipients is not None and purpose is not None
    assert lawful_basis is not None and special is not None and data_items is not None
    assert classification is not None and onward is not None and retention is not None and dpia is not None
    assert start is not None and end is not None and review is not None
    assert contacts is not None and signatories is not None
    return Agreement(agreement_id, number, parties, provider, recipients, purpose, lawful_basis, legal_power,
                     special, condition, data_items, classification, onward, retention[0], start, end, review,
                     dpia, contacts, signatories, minimum_quality)


def _agreement_id(check: Checker, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        check.add("must be 2 to 64 letters, digits, dots, hyphens or underscores, such as DSA-2026-0001; "
                  "leave it out and the register gives the next number", "id")
        return None
    return value


def _number(check: Checker, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        check.add("must be a whole number, 1 or more; leave it out and the register gives the next one",
                  "agreement_version")
        return None
    return value


def _parties(check: Checker, value: Any) -> tuple[tuple[Party, ...] | None, set[str] | None]:
    """The parties, or None; and the organisation ids named, so later checks can still use them."""
    entries = check.items(value, "parties")
    if entries is None:
        return None, None
    parties: list[Party] = []
    named: set[str] = set()
    ok = True
    for i, entry in enumerate(entries):
        at = f"parties[{i}]"
        item = check.mapping(entry, at, ("org", "name", "role"), ("org", "name", "role"), "a party")
        if item is None:
            ok = False
            continue
        org = check.org(item["org"], f"{at}.org")
        name = check.text(item["name"], f"{at}.name")
        role = item["role"]
        if role not in PARTY_ROLES:
            check.add(f"{role!r} is not a role a party can have; choose controller, joint_controller or processor",
                      f"{at}.role")
            role = None
        if org is not None and org in named:
            check.add(f"names {org} a second time; list each organisation once", f"{at}.org")
            org = None
        elif org is not None:
            named.add(org)
        if org is None or name is None or role is None:
            ok = False
            continue
        parties.append(Party(org, name, role))
    if not ok:
        return None, named
    if len(parties) < 2:
        check.add("must name at least two organisations: the one providing the data and one receiving it",
                  "parties")
        return None, named
    if not any(p.role in (CONTROLLER, JOINT_CONTROLLER) for p in parties):
        check.add("names no controller or joint controller; someone must decide why the data is used", "parties")
        return None, named
    return tuple(parties), named


def _provider(check: Checker, value: Any, parties: set[str] | None) -> str | None:
    org = check.org(value, "provider")
    if org is not None and parties is not None and org not in parties:
        check.add(f"{org} is not one of the parties", "provider")
        return None
    return org


def _recipients(check: Checker, value: Any, parties: set[str] | None, provider: str | None) -> tuple[str, ...] | None:
    entries = check.items(value, "recipients")
    if entries is None:
        return None
    result: list[str] = []
    ok = True
    for i, entry in enumerate(entries):
        at = f"recipients[{i}]"
        org = check.org(entry, at)
        if org is None:
            ok = False
        elif parties is not None and org not in parties:
            check.add(f"{org} is not one of the parties; a recipient must be a party to the agreement", at)
            ok = False
        elif org == provider:
            check.add(f"{org} is the provider; the provider does not receive its own data", at)
            ok = False
        elif org in result:
            check.add(f"names {org} twice", at)
            ok = False
        else:
            result.append(org)
    return tuple(result) if ok else None


def _letter(check: Checker, value: Any, field: str, choices: dict[str, str], article: str) -> str | None:
    if isinstance(value, str) and value.strip().lower() in choices and value == value.strip():
        return value.lower()
    listed = "; ".join(f"{k} {v}" for k, v in choices.items())
    if value is None or value == "":
        check.add(f"is empty: give the letter of the condition in {article} ({listed})", field)
    else:
        check.add(f"{value!r} is not a letter of {article}; choose one of: {listed}", field)
    return None


def _condition(check: Checker, value: Any, special: bool | None) -> str | None:
    if special is True:
        if value is None:
            check.add("is missing: special category data is shared, so the agreement must give the UK GDPR "
                      "Article 9(2) condition, a letter from a to j", "article_9_condition",
                      line_of="special_category_data")
            return None
        return _letter(check, value, "article_9_condition", ARTICLE_9_CONDITIONS, "UK GDPR Article 9(2)")
    if value is not None and special is False:
        check.add("is given, but special_category_data is false; remove it, or set special_category_data to "
                  "true", "article_9_condition")
    return None


def _data_items(check: Checker, value: Any) -> DataItems | None:
    if not isinstance(value, dict):
        check.add("must say either a dataset (dataset, schema, fields) or documents (media_types)", "data_items")
        return None
    kind = value.get("kind")
    if kind is None:
        if value.keys() & {"dataset", "schema", "fields"}:
            kind = DATASET
        elif value.keys() & {"media_types", "document_types"}:
            kind = DOCUMENTS
    if kind == DATASET:
        item = check.mapping(value, "data_items", ("kind", "dataset", "schema", "fields"),
                             ("dataset", "schema", "fields"), "dataset items")
        if item is None:
            return None
        name = check.text(item["dataset"], "data_items.dataset")
        schema = check.unique_texts(item["schema"], "data_items.schema", what="the field")
        fields = check.unique_texts(item["fields"], "data_items.fields", what="the field")
        if schema is not None and fields is not None:
            outside = [(i, f) for i, f in enumerate(fields) if f not in schema]
            for i, f in outside:
                check.add(f"field {f} is not in the schema of dataset {name or '(unnamed)'}; the schema has "
                          + ", ".join(schema), f"data_items.fields[{i}]")
            if outside:
                return None
        if name is None or schema is None or fields is None:
            return None
        return DatasetItems(name, schema, fields)
    if kind == DOCUMENTS:
        item = check.mapping(value, "data_items", ("kind", "media_types", "document_types"), ("media_types",),
                             "document items")
        if item is None:
            return None
        media = check.unique_texts(item["media_types"], "data_items.media_types", what="the media type",
                                   pattern=_MEDIA_TYPE_RE, pattern_words="a media type such as application/pdf")
        kinds = check.unique_texts(item.get("document_types", []), "data_items.document_types",
                                   what="the document type", empty_ok=True)
        if media is None or kinds is None:
            return None
        return DocumentItems(media, kinds)
    if kind is not None and "kind" in value:
        check.add(f"{kind!r} is not a kind of data item; choose dataset or documents", "data_items.kind")
    else:
        check.add("must say either a dataset (dataset, schema, fields) or documents (media_types)", "data_items")
    return None


def _minimum_quality(check: Checker, value: Any, items: DataItems | None) -> int | None:
    """A whole number from 0 to 100, for a dataset: the lowest quality score a share may have."""
    at = "minimum_quality"
    words = f"must be a quality score from {MIN_QUALITY} to {MAX_QUALITY}, such as 80"
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float)
                                                                         and not math.isfinite(value)):
        check.add(words, at)
        return None
    if not MIN_QUALITY <= value <= MAX_QUALITY:
        check.add(f"is {value:g}: a quality score is from {MIN_QUALITY} to {MAX_QUALITY}", at)
        return None
    if value != int(value):
        # Signed documents carry whole numbers only (civicshare.canonical).
        check.add(f"is {value:g}: give a whole number from {MIN_QUALITY} to {MAX_QUALITY}, such as "
                  f"{math.ceil(value)}", at)
        return None
    if isinstance(items, DocumentItems):
        check.add("applies to datasets only: documents have no quality score, so remove it", at)
        return None
    return int(value)


def _classification(check: Checker, value: Any) -> str | None:
    if value in CLASSIFICATIONS:
        return str(value)
    check.add(f"{value!r} is not a classification this node handles; choose OFFICIAL or OFFICIAL-SENSITIVE",
              "classification")
    return None


def _retention(check: Checker, value: Any) -> tuple[int | None] | None:
    """``(days,)`` or ``(None,)`` for until the agreement ends; None when not acceptable."""
    words = "say either days_after_receipt: N or until_agreement_end: true"
    if not isinstance(value, dict) or len(value) != 1:
        check.add(f"must {words}", "retention")
        return None
    (key, amount), = value.items()
    if key == "until_agreement_end":
        if amount is not True:
            check.add("must be true; to keep data for a number of days, say days_after_receipt: N instead",
                      "retention.until_agreement_end")
            return None
        return (None,)
    if key == "days_after_receipt":
        at = "retention.days_after_receipt"
        if isinstance(amount, bool) or not isinstance(amount, int):
            check.add("must be a whole number of days", at)
        elif amount < 0:
            check.add(f"is {amount}: a retention period cannot be negative", at)
        elif amount == 0:
            check.add("is 0: recipients must be allowed to keep the data at least 1 day", at)
        elif amount > MAX_RETENTION_DAYS:
            check.add(f"is {amount:,} days, more than a century; check the number", at)
        else:
            return (amount,)
        return None
    check.add(f"is not a kind of retention; {words}", f"retention.{key}")
    return None


def _dates(check: Checker, start: date | None, end: date | None, review: date | None) -> None:
    if start is not None and end is not None and end <= start:
        check.add(f"is {end}, {'before' if end < start else 'the same day as'} the start date {start}; an "
                  "agreement must end after it starts", "end_date")
    if review is not None and end is not None and review > end:
        check.add(f"is {review}, after the end date {end}; review the agreement before it ends", "review_date")
    if review is not None and start is not None and review < start:
        check.add(f"is {review}, before the start date {start}", "review_date")
