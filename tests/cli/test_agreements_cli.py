"""``civicshare agreement template|create|list|show|propose|sign|revoke`` through the real command, on each
backend."""

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
    assert shown.json() == {**record, "notices": []}
    assert f"{record['id']} version 1 (draft)" in text.out and "Article 6(1)(e) public task" in text.out
    rows = list(csv.DictReader(csv_file.open(newline="", encoding="utf-8")))
    assert [(r["id"], r["hash"], r["lawful basis"]) for r in rows] == [
        (record["id"], record["hash"], "Article 6(1)(e) public task")]


def test_propose_sign_revoke_between_two_organisations_of_one_node(initialised: Cli, tmp_path: Path) -> None:
    cli = initialised
    assert cli("org", "add", "--org", "south-fen", "--name", "South Fen Borough Council").code == 0
    made = cli("agreement", "template", "--provider", "north-wold", "--recipient", "south-fen", "--documents")
    assert made.code == 0, made.err
    (tmp_path / "dsa.yaml").write_text(made.out, encoding="utf-8")
    users = run_all(cli, ("user", "add", "nadia", "--role", "dpo", "--org", "north-wold"),
                    ("user", "add", "sol", "--role", "dpo", "--org", "south-fen"),
                    ("user", "add", "clerk", "--role", "records_manager", "--org", "north-wold"))
    created = cli("agreement", "create", "--file", str(tmp_path / "dsa.yaml"), "--org", "north-wold", "--json")
    assert [u.code for u in users] == [0, 0, 0] and created.code == 0, created.err
    agreement_id = created.json()["id"]

    # south-fen is on this node and not pinned: the proposal is handed over at once, on the node itself.
    proposed = cli("agreement", "propose", agreement_id, "--org", "north-wold", "--json")
    assert proposed.code == 0, proposed.err
    assert (proposed.json()["state"], proposed.json()["notices"]) == ("proposed", [])
    theirs, early, clerk, admin = run_all(
        cli, ("agreement", "show", agreement_id, "--org", "south-fen", "--json"),
        ("agreement", "revoke", agreement_id, "--org", "south-fen"),
        ("agreement", "sign", agreement_id, "--org", "north-wold", "--as", "clerk"),
        ("agreement", "sign", agreement_id, "--org", "north-wold"))
    assert theirs.code == 0 and theirs.json()["proposed_by"] == "north-wold"
    assert theirs.json()["waiting_for"] == ["north-wold", "south-fen"]
    assert "--reason" in early.err and early.code == 2
    assert one_line_refusal(clerk, 1) == (
        "civicshare: clerk is a records manager, not a data protection officer; only a user with the dpo role "
        "signs agreements for north-wold (add one with 'civicshare user add NAME --role dpo').\n")
    assert "--as" in admin.err and admin.code == 2

    signed = cli("agreement", "sign", agreement_id, "--org", "south-fen", "--as", "sol", "--json")
    assert signed.code == 0, signed.err
    assert [(s["party"], s["signed_by"]) for s in signed.json()["signatures"]] == [("south-fen", "sol")]
    text = cli("agreement", "sign", agreement_id, "--org", "north-wold", "--as", "nadia")
    assert text.code == 0, text.err
    assert text.out.startswith(f"Signed {agreement_id} version 1 for north-wold as nadia.\n")
    assert "  in force:        yes\n" in text.out and "  signed:          north-wold by nadia on " in text.out

    revoked = cli("agreement", "revoke", agreement_id, "--org", "south-fen", "--reason", "The pilot ended.", "--json")
    assert revoked.code == 0, revoked.err
    assert revoked.json()["revocation"]["by"] == "south-fen" and revoked.json()["notices"] == []
    listed, shown, again = run_all(
        cli, ("agreement", "list", "--org", "north-wold", "--json"),
        ("agreement", "show", agreement_id, "--org", "north-wold"),
        ("agreement", "revoke", agreement_id, "--org", "north-wold", "--reason", "too"))
    log = cli("audit", "log", "--org", "north-wold", "--json")
    assert [r["state"] for r in listed.json()] == ["revoked"]
    assert f"  in force:        no: agreement {agreement_id} was revoked by south-fen on " in shown.out
    assert shown.out.rstrip().endswith("The pilot ended.") or "The pilot ended." in shown.out
    assert "was already revoked" in one_line_refusal(again, 1)
    events = [(e["action"], e["actor"], e["outcome"]) for e in log.json() if e["action"].startswith("agreement.")]
    operator = f"cli:{getpass.getuser()}"
    assert ("agreement.sign", operator, "refused") in events
    assert ("agreement.sign", "nadia", "ok") in events
    assert ("agreement.propose", operator, "ok") in events
    assert ("agreement.received", "node:agreements", "ok") in events
    assert ("agreement.revoke", operator, "refused") in events
    signing = next(e for e in log.json() if e["action"] == "agreement.sign" and e["outcome"] == "ok")
    assert signing["details"]["operator"] == operator
