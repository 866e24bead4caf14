"""The agreement model: YAML and JSON round trips, and a hash that only content changes."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from civicshare.agreements import parse_agreement, to_yaml
from civicshare.agreements.model import (
    ARTICLE_9_CONDITIONS,
    CLASSIFICATIONS,
    LAWFUL_BASES,
    PARTY_ROLES,
    Agreement,
    Contact,
    DatasetItems,
    DocumentItems,
    Party,
    Signatory,
)
from civicshare.canonical import canonical_json
from tests.agreements.support import good_yaml

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                max_size=40).map(str.strip).filter(bool)
_org = st.from_regex(r"[a-z][a-z0-9-]{1,20}", fullmatch=True)


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    orgs = draw(st.lists(_org, min_size=2, max_size=4, unique=True))
    roles = [draw(st.sampled_from(PARTY_ROLES)) for _ in orgs]
    roles[0] = draw(st.sampled_from(("controller", "joint_controller")))
    parties = tuple(Party(o, draw(_text), r) for o, r in zip(orgs, roles, strict=True))
    recipients = tuple(draw(st.lists(st.sampled_from(orgs[1:]), min_size=1, unique=True)))
    if draw(st.booleans()):
        schema = draw(st.lists(_text, min_size=1, max_size=6, unique=True))
        fields = draw(st.lists(st.sampled_from(schema), min_size=1, unique=True))
        items: DatasetItems | DocumentItems = DatasetItems(draw(_text), tuple(schema), tuple(fields))
    else:
        items = DocumentItems(tuple(draw(st.lists(st.sampled_from(["application/pdf", "image/png", "text/csv"]),
                                                  min_size=1, unique=True))),
                              tuple(draw(st.lists(_text, max_size=3, unique=True))))
    start = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)))
    end = start + timedelta(days=draw(st.integers(1, 2000)))
    review = start + timedelta(days=draw(st.integers(0, (end - start).days)))
    special = draw(st.booleans())
    return Agreement(
        id=draw(st.none() | st.from_regex(r"DSA-20[0-9]{2}-[0-9]{4}", fullmatch=True)),
        agreement_version=draw(st.none() | st.integers(1, 50)), parties=parties, provider=orgs[0],
        recipients=recipients, purpose=draw(_text), lawful_basis=draw(st.sampled_from(sorted(LAWFUL_BASES))),
        legal_power=draw(st.none() | _text), special_category_data=special,
        article_9_condition=draw(st.sampled_from(sorted(ARTICLE_9_CONDITIONS))) if special else None,
        data_items=items, classification=draw(st.sampled_from(CLASSIFICATIONS)), onward_sharing=draw(st.booleans()),
        retention_days=draw(st.none() | st.integers(1, 3650)), start_date=start, end_date=end, review_date=review,
        dpia_reference=draw(_text),
        contacts=tuple(Contact(o, draw(_text), f"dpo@{o}.example") for o in orgs),
        signatories=tuple(Signatory(o, draw(_text), draw(_text)) for o in orgs))


def _shuffled(value: object, rnd: random.Random) -> object:
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: _shuffled(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(agreements(), st.integers(0, 2**32), st.sampled_from([None, 1, 4]))
def test_round_trip_through_yaml_and_json_keeps_the_agreement_and_its_hash(agreement: Agreement, seed: int,
                                                                         indent: int | None) -> None:
    assert parse_agreement(to_yaml(agreement)) == agreement
    reordered = json.dumps(_shuffled(agreement.to_body(), random.Random(seed)), indent=indent,
                           ensure_ascii=seed % 2 == 0)
    again = parse_agreement(reordered, fmt="json")
    assert again == agreement
    assert again.agreement_hash == agreement.agreement_hash
    assert again.canonical() == canonical_json(agreement.to_body())


@settings(max_examples=40, deadline=None)
@given(agreements(), st.data())
def test_any_change_changes_the_hash(agreement: Agreement, data: st.DataObject) -> None:
    changes = {
        "purpose": agreement.purpose + ".",
        "lawful_basis": "a" if agreement.lawful_basis != "a" else "b",
        "classification": [c for c in CLASSIFICATIONS if c != agreement.classification][0],
        "onward_sharing": not agreement.onward_sharing,
        "retention_days": (agreement.retention_days or 0) + 1,
        "end_date": agreement.end_date + timedelta(days=1),
        "agreement_version": (agreement.agreement_version or 0) + 1,
        "dpia_reference": agreement.dpia_reference + "1",
        "parties": agreement.parties[::-1],
    }
    field = data.draw(st.sampled_from(sorted(changes)))
    changed = replace(agreement, **{field: changes[field]})
    assert changed.agreement_hash != agreement.agreement_hash
    # Only a change of what the agreement says changes the content hash; a new number does not.
    assert (changed.content_hash == agreement.content_hash) == (field == "agreement_version")


def test_layout_and_comments_do_not_change_the_hash() -> None:
    text = good_yaml()
    plain = "\n".join(line.split("  #")[0].rstrip() for line in text.splitlines() if not line.startswith("#"))
    assert parse_agreement(plain).agreement_hash == parse_agreement(text).agreement_hash
    spaced = text.replace("recipients: [south-fen]", "recipients:\n  -   south-fen\n\n")
    assert parse_agreement(spaced).agreement_hash == parse_agreement(text).agreement_hash
    assert len(parse_agreement(text).agreement_hash) == 64
