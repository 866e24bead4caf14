"""``civicshare agreement template|create|list|show`` through the real command, on each backend."""

from __future__ import annotations

import csv
import getpass
from pathlib import Path

from civicshare.agreements import parse_agreement
from tests.cli.conftest import Cli
from tests.cli.test_audit_cli import one_line_refusal, run_all


def test_template_create_list_show(initialised: Cli, tmp_path: Path) -> None:
    made, wrong = run_all(initialised,
                          ("agreement", "template", "--provider", "north-wold", "--recipient", "south-fen",
                           "--documents"),
                          ("agreement", "template", "--provider", "north-wold", "--recipient", "south-fen"))
    assert made.code == 0, made.err
    assert "Say what the agreement covers" in one_line_refusal(wrong, 2)
    template = parse_agreement(made.out)
    assert template.provider == "north-wold" and template.parties[0].name == "North Wold District Council"
    good, bad = tmp_path / "dsa.yaml", tmp_path / "bad.yaml"
    good.write_text(made.out, encoding="utf-8")
    bad.write_text(made.out.replace("lawful_basis: e\n", "").replace("classification: OFFICIAL ",
                                                                     "classification: TOP "), encoding="utf-8")

    created, refused = run_all(initialised, ("agreement", "create", "--file", str(good), "--json"),
                               ("agreement", "create", "--file", str(bad)))
    assert created.code == 0, created.err
    record = created.json()
    assert (record["id"], record["version"], record["state"]) == ("DSA-" + record["id"][4:8] + "-0001", 1, "draft")
    assert record["hash"] == template.numbered(record["id"], 1).agreement_hash
    assert record["created_by"] == f"cli:{getpass.getuser()}"
    line = one_line_refusal(refused, 1)
    assert "bad.yaml, line 4, field 'lawful_basis': is missing" in line
    assert "field 'classification': 'TOP' is not a classification" in line

    csv_file = tmp_path / "register.csv"
    listed, shown, text, exported = run_all(initialised, ("agreement", "list", "--json"),
                                            ("agreement", "show", record["id"], "--json"),
                                            ("agreement", "show", record["id"]),
                                            ("agreement", "list", "--csv", str(csv_file)))
    assert listed.code == shown.code == text.code == exported.code == 0, (listed.err, shown.err, text.err,
                                                                           exported.err)
    assert listed.json() == [{k: v for k, v in record.items() if k != "agreement"}]
    assert shown.json() == record
    assert f"{record['id']} version 1 (draft)" in text.out and "Article 6(1)(e) public task" in text.out
    rows = list(csv.DictReader(csv_file.open(newline="", encoding="utf-8")))
    assert [(r["id"], r["hash"], r["lawful basis"]) for r in rows] == [
        (record["id"], record["hash"], "Article 6(1)(e) public task")]
