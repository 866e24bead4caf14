"""The register on SQLite and PostgreSQL: create, versions, duplicates, warnings, CSV, permissions, audit."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import update

from civicshare.access import Role
from civicshare.agreements import parse_agreement
from civicshare.agreements.register import AgreementRegister
from civicshare.db import tables as t
from civicshare.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, UsageError
from civicshare.node import Node
from tests.agreements.support import NORTH, SOUTH, Clock, good_yaml
from tests.conftest import actor, write_csv


@pytest.fixture
def clock(node: Node) -> Clock:
    """The node's agreement use cases on a clock the test moves."""
    fixed = Clock()
    node.clock = fixed
    node.agreement_register = AgreementRegister(node.db.engine, node.audit, fixed, node.rng)
    return fixed


def test_template_round_trip_and_review_warning(node: Node, clock: Clock, tmp_path: Path) -> None:
    manager = actor(NORTH)
    source = write_csv(tmp_path / "tenants.csv", "uprn,name,date_of_birth,nhs_number,tenancy_start\n"
                                                 "1,A B,1970-01-01,9434765919,2020-01-01\n")
    node.import_dataset(manager, source, "tenants")
    text = node.agreement_template(manager, NORTH, SOUTH, dataset="tenants", fields=["uprn", "tenancy_start"])
    assert 'schema: ["uprn", "name", "date_of_birth", "nhs_number", "tenancy_start"]' in text
    assert 'name: "South Fen Borough Council"' in text and "# REVIEW:" in text
    with pytest.raises(UsageError, match="has no field nhs"):
        node.agreement_template(manager, NORTH, SOUTH, dataset="tenants", fields=["uprn", "nhs"])
    with pytest.raises(UsageError, match="holds no dataset named 'pets'"):
        node.agreement_template(manager, NORTH, SOUTH, dataset="pets")

    record = node.create_agreement(manager, text, filename="dsa.yaml")
    assert (record.id, record.version, record.state, record.created_by) == ("DSA-2026-0001", 1, "draft",
                                                                            manager.name)
    assert record.agreement == parse_agreement(text).numbered("DSA-2026-0001", 1)
    assert record.hash == record.agreement.agreement_hash and record.warnings == ()
    assert [r.hash for r in node.agreements(manager)] == [record.hash]

    clock.advance(days=240)  # 2026-11-27: the review on 2026-12-31 is 34 days away
    assert node.agreement(manager, record.id).warnings == ()
    clock.advance(days=5)
    assert node.agreements(manager)[0].warnings == ("review due on 2026-12-31 (in 29 days)",)
    clock.advance(days=40)
    assert node.agreement(manager, record.id).warnings == ("review overdue since 2026-12-31",)
    clock.advance(days=100)
    assert node.agreement(manager, record.id).warnings == ("review overdue since 2026-12-31", "ended on 2027-03-31")


def test_versions_and_duplicates(node: Node, clock: Clock) -> None:
    manager = actor(NORTH)
    first = node.create_agreement(manager, good_yaml())
    with pytest.raises(Conflict, match="already in the register as DSA-2026-0001 version 1"):
        node.create_agreement(manager, good_yaml())
    named = good_yaml().replace("# id: DSA-2026-0001", "id: DSA-2026-0001")
    with pytest.raises(Conflict, match="DSA-2026-0001 version 1"):
        node.create_agreement(manager, named)
    second = node.create_agreement(manager, named.replace("lawful_basis: e", "lawful_basis: c"))
    assert (second.id, second.version) == ("DSA-2026-0001", 2) and second.hash != first.hash
    with pytest.raises(Conflict, match="already has version 2"):
        node.create_agreement(manager, named.replace("lawful_basis: e", "lawful_basis: f\nagreement_version: 2"))
    other = node.create_agreement(manager, good_yaml().replace("days_after_receipt: 365", "days_after_receipt: 30"))
    own = node.create_agreement(manager, good_yaml().replace("# id: DSA-2026-0001", "id: HOUSING-7\n"
                                                             "agreement_version: 3"))
    assert [(r.id, r.version) for r in node.agreements(manager)] == [
        ("DSA-2026-0001", 1), ("DSA-2026-0001", 2), ("DSA-2026-0002", 1), ("HOUSING-7", 3)]
    assert node.agreement(manager, "DSA-2026-0001").version == 2
    assert node.agreement(manager, "DSA-2026-0001", 1).hash == first.hash
    assert (other.id, own.id) == ("DSA-2026-0002", "HOUSING-7")
    with pytest.raises(NotFound):
        node.agreement(manager, "DSA-2026-0001", 3)

    # Organisations on one node share nothing: south-fen's register is its own.
    south = actor(SOUTH)
    assert node.agreements(south) == []
    with pytest.raises(NotFound):
        node.agreement(south, "DSA-2026-0001")
    assert node.create_agreement(south, good_yaml()).id == "DSA-2026-0001"
    node.add_organisation("east-marsh", "East Marsh Council")
    with pytest.raises(InvalidInput) as refused:
        node.create_agreement(actor("east-marsh"), good_yaml())
    assert [p.field for p in refused.value.problems] == ["parties"]


def test_tampered_rows_are_detected(node: Node, clock: Clock) -> None:
    manager = actor(NORTH)
    record = node.create_agreement(manager, good_yaml())
    body = record.agreement.canonical().decode().replace('"lawful_basis":"e"', '"lawful_basis":"f"')
    with node.db.engine.begin() as conn:
        conn.execute(update(t.agreements).values(body=body))
    with pytest.raises(IntegrityError, match="does not match its hash"):
        node.agreements(manager)


def test_the_csv_register(node: Node, clock: Clock) -> None:
    manager = actor(NORTH)
    a = node.create_agreement(manager, good_yaml())
    b = node.create_agreement(manager, good_yaml().replace(
        'purpose: "To be written: why north-wold shares this data with south-fen."',
        'purpose: "Rehousing, with \\"priority\\" cases, across\\ntwo lines"').replace(
        "review_date: 2026-12-31", "review_date: 2026-04-20").replace("classification: OFFICIAL ",
                                                                      "classification: OFFICIAL-SENSITIVE "))
    text = node.agreements_csv(manager)
    expected = [
        ["id", "version", "state", "parties", "purpose", "lawful basis", "classification", "start", "end",
         "next review", "hash", "warnings"],
        ["DSA-2026-0001", "1", "draft", "north-wold (controller); south-fen (controller)",
         "To be written: why north-wold shares this data with south-fen.", "Article 6(1)(e) public task",
         "OFFICIAL", "2026-04-01", "2027-03-31", "2026-12-31", a.hash, ""],
        ["DSA-2026-0002", "1", "draft", "north-wold (controller); south-fen (controller)",
         'Rehousing, with "priority" cases, across\ntwo lines', "Article 6(1)(e) public task",
         "OFFICIAL-SENSITIVE", "2026-04-01", "2027-03-31", "2026-04-20", b.hash,
         "review due on 2026-04-20 (in 19 days)"],
    ]
    assert list(csv.reader(io.StringIO(text, newline=""))) == expected
    assert text.startswith("id,version,state,parties,purpose,lawful basis,") and text.endswith("\r\n")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DPO, Role.RECORDS_MANAGER, Role.CASEWORKER])
def test_permissions(node: Node, clock: Clock, role: Role) -> None:
    who = actor(NORTH, role)
    if role is Role.CASEWORKER:
        with pytest.raises(PermissionDenied, match="may not add data sharing agreements"):
            node.create_agreement(who, good_yaml())
        with pytest.raises(PermissionDenied, match="may not draft"):
            node.agreement_template(who, NORTH, SOUTH, documents=True)
        node.create_agreement(actor(NORTH), good_yaml())
    else:
        node.agreement_template(who, NORTH, SOUTH, documents=True)
        node.create_agreement(who, good_yaml())
    # Everyone may read the register.
    assert [r.id for r in node.agreements(who)] == ["DSA-2026-0001"]
    assert node.agreement(who, "DSA-2026-0001").version == 1
    assert node.agreements_csv(who).count("\r\n") == 2


def test_audit_entries_name_the_agreement_not_its_people(node: Node, clock: Clock) -> None:
    manager = actor(NORTH)
    record = node.create_agreement(manager, good_yaml())
    with pytest.raises(InvalidInput):
        node.create_agreement(manager, good_yaml().replace("lawful_basis: e\n", ""))
    with pytest.raises(Conflict):
        node.create_agreement(manager, good_yaml())
    with pytest.raises(PermissionDenied):
        node.create_agreement(actor(NORTH, Role.CASEWORKER), good_yaml())
    entries = [e for e in node.audit.entries(NORTH) if e.action == "agreement.create"]
    assert [(e.outcome, e.object) for e in entries] == [("ok", "DSA-2026-0001"), ("refused", None),
                                                       ("refused", None), ("refused", None)]
    assert entries[0].details == {"version": 1, "hash": record.hash, "parties": [NORTH, SOUTH], "state": "draft"}
    assert [e.details["code"] for e in entries[1:]] == ["invalid_input", "conflict", "forbidden"]
    for entry in entries:
        assert "To be named" not in str(entry.details) and "dpo@" not in str(entry.details)
