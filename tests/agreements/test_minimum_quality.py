"""An agreement's minimum quality score: written, checked, kept out of agreements that do not set it,
and enforced at the provider's share and again at the recipient's arrival -- on SQLite and PostgreSQL.

The dataset is a person file with faults (an NHS number with a wrong check digit, a birth in the
future, an impossible date, a bad postcode), so its quality score is below 100.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from civicshare.access import Role
from civicshare.agreements import parse_agreement
from civicshare.agreements.enforce import RULE_QUALITY
from civicshare.api.app import create_app
from civicshare.db import tables as t
from civicshare.errors import AgreementRefused, InvalidInput
from civicshare.exchange.manifest import AgreementRef
from civicshare.holdings.store import Holding
from civicshare.node import Node
from tests.agreements.enforce_support import bypass_manifest, clock, cnode, ctransport, deliver, entries, put_manifest
from tests.agreements.lifecycle_support import activate
from tests.agreements.support import good_yaml
from tests.cli.conftest import Cli
from tests.conftest import actor, write_csv
from tests.exchange.transfer_support import NORTH, SOUTH

__all__ = ["clock", "cnode", "ctransport"]  # fixtures

PEOPLE = ("first_name,last_name,date_of_birth,nhs_number,ni_number,postcode\n"
          "Zoë,Smith,1980-04-03,9434765919,AB123456C,NW1 4AB\n"
          "Ann,Lee,1975-01-31,9434765918,AB123456D,SW1A 1AA\n"
          "Bob,Jones,2130-01-01,943476591,AB123456A,not a postcode\n"
          "Cy,,1990-02-30,,,\n")
SHARED = ["first_name", "last_name", "date_of_birth", "nhs_number"]
# The canonical SHA-256 of good_yaml() and of its documents form, computed with civicshare before
# minimum_quality existed: an agreement that does not set it keeps its bytes and so its signatures.
DATASET_HASH = "d5b672f281a155aa727a329f0bf483367ce441d217ae948aad4d0ea56193a766"
DOCUMENTS_HASH = "9edde9d1a16bb479e135a266ab5a16ea8324ff6581a06a241ebcce2477ebec6c"


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# Writing and checking it -----------------------------------------------------------------------


def test_agreements_without_a_minimum_keep_their_canonical_bytes() -> None:
    dataset = parse_agreement(good_yaml())
    assert dataset.minimum_quality is None and "minimum_quality" not in dataset.to_body()
    assert dataset.agreement_hash == DATASET_HASH
    documents = parse_agreement(good_yaml(dataset=None, fields=None, schema=None, documents=True))
    assert documents.agreement_hash == DOCUMENTS_HASH
    # Written out as null it is the same agreement too.
    assert parse_agreement(good_yaml() + "minimum_quality: null\n").agreement_hash == DATASET_HASH


def test_the_template_offers_it_commented_out_for_datasets_only() -> None:
    text = good_yaml()
    assert "\n# minimum_quality: 80\n" in text
    assert "minimum_quality" not in good_yaml(dataset=None, fields=None, schema=None, documents=True)
    agreement = parse_agreement(edit(text, "# minimum_quality: 80", "minimum_quality: 80"))
    assert agreement.minimum_quality == 80
    body = agreement.to_body()
    assert body["minimum_quality"] == 80 and agreement.agreement_hash != DATASET_HASH
    # It reads back from its own canonical JSON, as the other parties read a proposal.
    assert parse_agreement(agreement.canonical().decode(), fmt="json") == agreement
    assert parse_agreement(edit(text, "# minimum_quality: 80", "minimum_quality: 80.0")).minimum_quality == 80
    assert parse_agreement(edit(text, "# minimum_quality: 80", "minimum_quality: 0")).minimum_quality == 0


@pytest.mark.parametrize("value, words", [
    ("80.5", "is 80.5: give a whole number from 0 to 100, such as 81"),
    ("101", "is 101: a quality score is from 0 to 100"),
    ("-1", "is -1: a quality score is from 0 to 100"),
    ('"80"', "must be a quality score from 0 to 100, such as 80"),
    ("true", "must be a quality score from 0 to 100, such as 80"),
    (".nan", "must be a quality score from 0 to 100, such as 80"),
    ("[80]", "must be a quality score from 0 to 100, such as 80"),
])
def test_a_minimum_that_is_not_a_score_is_refused_with_its_line(value: str, words: str) -> None:
    text = edit(good_yaml(), "# minimum_quality: 80", f"minimum_quality: {value}")
    line = text.splitlines().index(f"minimum_quality: {value}") + 1
    with pytest.raises(InvalidInput) as caught:
        parse_agreement(text, filename="dsa.yaml")
    [problem] = caught.value.problems
    assert (problem.field, problem.line, problem.file) == ("minimum_quality", line, "dsa.yaml")
    assert problem.message == words


def test_documents_have_no_quality_score() -> None:
    text = good_yaml(dataset=None, fields=None, schema=None, documents=True) + "minimum_quality: 50\n"
    with pytest.raises(InvalidInput) as caught:
        parse_agreement(text)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("minimum_quality", "applies to datasets only: documents have no quality score, so remove it")]


# Enforcing it ------------------------------------------------------------------------------------


def people(node: Node, tmp_path: Path) -> Holding:
    holding = node.import_dataset(actor(NORTH), write_csv(tmp_path / "people.csv", PEOPLE), "people",
                                  schema="person")
    assert holding.quality_score is not None and 0 < holding.quality_score < 100
    return holding


def _agreement(node: Node, transport: httpx.BaseTransport, minimum: int | None) -> str:
    return activate(node, transport, NORTH, [SOUTH], dataset="people", fields=SHARED, minimum_quality=minimum).id


def test_a_share_below_the_minimum_is_refused_in_plain_words(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = people(cnode, tmp_path)
    score = holding.quality_score
    assert score is not None
    minimum = int(score) + 1
    agreement = _agreement(cnode, ctransport, minimum)
    with pytest.raises(AgreementRefused) as caught:
        cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement)
    assert caught.value.rule == RULE_QUALITY
    assert caught.value.reason == (f"the quality score of people is {score:g}; agreement {agreement} requires "
                                   f"at least {minimum}")
    logged = entries(cnode, NORTH, "transfer.create")[-1]
    assert (logged.outcome, logged.details["code"], logged.details["reason"]) == (
        "refused", "agreement_refused", caught.value.message)
    assert cnode.transfers(actor(NORTH)) == []
    folder = cnode.layout.outbox_dir(NORTH)
    assert not folder.exists() or list(folder.iterdir()) == []
    # The people who sign it see the minimum.
    shown = Cli(cnode.layout.home, tmp_path / "cli-tmp")("agreement", "show", agreement, "--org", NORTH)
    assert shown.code == 0, shown.err
    assert f"minimum quality: {minimum} (a share scoring lower is refused)" in shown.out


def test_a_share_that_reaches_the_minimum_carries_its_summary_to_the_inbox(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = people(cnode, tmp_path)
    score = holding.quality_score
    assert score is not None
    agreement = _agreement(cnode, ctransport, int(score))
    sent = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement)
    quality = sent.manifest.holding.quality
    assert quality is not None and sent.manifest.holding.quality_score == score
    # Only the shared columns are described; the score and counts are those of the dataset.
    report = cnode.quality(actor(NORTH), holding.id).summary()
    assert sorted(quality["fields"]) == sorted(SHARED)
    assert (quality["rows"], quality["invalid_rows"]) == (report["rows"], report["invalid_rows"]) == (4, 3)
    assert float(quality["fields"]["nhs_number"]["validity"]) == report["fields"]["nhs_number"]["validity"]
    logged = entries(cnode, NORTH, "transfer.create")[-1]
    assert logged.details["quality_score"] == f"{score:g}"

    assert deliver(cnode, ctransport) == {sent.id: "delivered"}
    [arrived] = cnode.inbox(actor(SOUTH))
    shown = arrived.to_json()
    assert shown["quality_score"] == score
    assert shown["quality"]["fields"]["nhs_number"] == report["fields"]["nhs_number"]
    assert set(shown["quality"]["fields"]) == set(SHARED)
    token = cnode.add_user(SOUTH, "south caseworker", Role.CASEWORKER)[1]
    client = TestClient(create_app(cnode), raise_server_exceptions=False)
    answer = client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert [(i["quality_score"], i["quality"]) for i in answer.json()["inbox"]] == [(score, shown["quality"])]
    received = cnode.holding(actor(SOUTH), arrived.holding_id)
    assert received.quality_score == score
    kept = json.loads(received.quality or "")
    assert (kept["kind"], kept["from"], kept["transfer"], kept["score"]) == ("quality-summary", NORTH, sent.id,
                                                                              score)
    # The recipient's own report is still computed from what arrived, not taken from the summary.
    own = cnode.quality(actor(SOUTH), received.id)
    assert own.rows == 4 and {f.name for f in own.fields} == set(SHARED)
    assert cnode.holding(actor(SOUTH), received.id).quality_score == score  # the sender's summary is kept


def _ref(node: Node, agreement_id: str) -> AgreementRef:
    record = node.agreement_register.find(NORTH, agreement_id)
    return AgreementRef(record.id, record.version, record.hash)


def test_the_recipient_refuses_a_summary_below_the_minimum_or_none(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    """A sender that skips its own check: south-fen checks the summary the manifest states."""
    holding = people(cnode, tmp_path)
    score = holding.quality_score
    assert score is not None
    minimum = int(score) + 1
    agreement = _agreement(cnode, ctransport, minimum)
    ref = _ref(cnode, agreement)
    _m, document, sealed = bypass_manifest(cnode, holding.id, ref, tmp_path / "none.age", columns=SHARED)
    assert sealed.holding.quality is None  # no summary at all
    _refused(cnode, ctransport, document, f"the manifest carries no quality summary for people; agreement "
                                          f"{agreement} requires a score of at least {minimum}")
    low = {"version": 1, "score": f"{score:g}", "rows": 4, "invalid_rows": 3, "fields": {}}
    _m, document, _s = bypass_manifest(cnode, holding.id, ref, tmp_path / "low.age", columns=SHARED, quality=low)
    _refused(cnode, ctransport, document, f"the quality score of people is {score:g}; agreement {agreement} "
                                          f"requires at least {minimum}")
    # A summary that claims enough is let in: the recipient sees it, and its own report tells the truth.
    claimed = {**low, "score": "99.5"}
    _m, document, _s = bypass_manifest(cnode, holding.id, ref, tmp_path / "ok.age", columns=SHARED, quality=claimed)
    answer = put_manifest(cnode, ctransport, document)
    assert answer.status_code == 200, answer.text
    assert [i.to_json()["quality_score"] for i in cnode.inbox(actor(SOUTH))] == [99.5]


def _refused(node: Node, transport: httpx.BaseTransport, document: dict[str, object], words: str) -> None:
    answer = put_manifest(node, transport, document)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["rule"], error["reason"]) == ("agreement_refused", RULE_QUALITY, words)
    logged = entries(node, SOUTH, "transfer.refused")[-1]
    assert (logged.details["rule"], logged.details["step"]) == (RULE_QUALITY, "manifest")
    with node.db.engine.connect() as conn:
        assert conn.execute(select(t.inbound).where(t.inbound.c.org_id == SOUTH)).first() is None


def test_without_a_minimum_any_score_is_shared_and_the_inbox_shows_it(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = people(cnode, tmp_path)
    sent = cnode.share(actor(NORTH), holding.id, SOUTH, agreement=_agreement(cnode, ctransport, None))
    assert deliver(cnode, ctransport) == {sent.id: "delivered"}
    [arrived] = cnode.inbox(actor(SOUTH))
    assert arrived.to_json()["quality_score"] == holding.quality_score
    # The command a records manager runs before using the data, on the same home.
    cli = Cli(cnode.layout.home, tmp_path / "cli-tmp")
    table = cli("inbox", "--org", SOUTH)
    assert table.code == 0, table.err
    assert "quality" in table.out and f"{holding.quality_score:g} (3 of 4 rows with faults)" in table.out
    listed = cli("inbox", "--org", SOUTH, "--json")
    assert [(i["transfer"], i["quality_score"], i["quality"]["invalid_rows"]) for i in listed.json()] == [
        (sent.id, holding.quality_score, 3)]


def test_a_dataset_imported_before_reports_has_its_report_computed_when_shared(
        cnode: Node, ctransport: httpx.BaseTransport, tmp_path: Path) -> None:
    holding = people(cnode, tmp_path)
    score = holding.quality_score
    # As migration 0007 leaves a dataset imported before reports existed.
    with cnode.db.engine.begin() as conn:
        conn.execute(t.holdings.update().where(t.holdings.c.id == holding.id).values(quality=None,
                                                                                      quality_score=None))
    agreement = _agreement(cnode, ctransport, int(score or 0) + 1)
    with pytest.raises(AgreementRefused, match=f"the quality score of people is {score:g}"):
        cnode.share(actor(NORTH), holding.id, SOUTH, agreement=agreement)
    stored = cnode.holding(actor(NORTH), holding.id)
    assert stored.quality_score == score and json.loads(stored.quality or "")["kind"] == "quality-report"
