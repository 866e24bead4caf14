"""``civicshare card`` and ``civicshare partner add|list|show`` through the real command.

The first home (north-wold) runs on each backend in turn; the partner's home is a second, separate
home on SQLite, as two councils' nodes would be.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicshare.exchange.card import parse_card
from tests.cli.conftest import Cli, Result
from tests.cli.test_audit_cli import one_line_refusal, run_all

OPERATOR = f"cli:{getpass.getuser()}"


def new_home(tmp_path: Path, name: str, org: str) -> Cli:
    cli = Cli(tmp_path / name, tmp_path / f"{name}-tmp")
    result = cli("init", "--org", org, "--name", f"{org.replace('-', ' ').title()} Council",
                 "--url", f"https://{org}.example")
    assert result.code == 0, result.err
    return cli


@pytest.fixture
def east(tmp_path: Path) -> Cli:
    return new_home(tmp_path, "east", "east-marsh")


def test_card_out_then_partner_add_on_another_home(initialised: Cli, east: Cli, tmp_path: Path) -> None:
    card_file = tmp_path / "north-wold.card.json"
    made = initialised("card", "--out", str(card_file))
    assert made.code == 0, made.err
    assert "north-wold" in made.out and "ed25519:" in made.err
    assert card_file.stat().st_mode & 0o777 == 0o644
    card, document = parse_card(card_file.read_text(encoding="utf-8"), now=datetime.now(UTC))

    overwrite = initialised.popen("card", "--out", str(card_file))  # side by side with the next command
    added = east("partner", "add", str(card_file), "--json")
    out, err = overwrite.communicate(timeout=120)
    again = Result(overwrite.returncode, out, err)
    assert "already exists" in one_line_refusal(again, 1)
    assert json.loads(card_file.read_text(encoding="utf-8")) == document  # untouched
    assert added.code == 0, added.err
    pinned = added.json()
    assert (pinned["organisation"], pinned["partner"], pinned["name"]) == (
        "east-marsh", "north-wold", "North Wold District Council")
    assert pinned["signing_key"] == document["body"]["signing_key"] and pinned["added_by"] == OPERATOR

    listed, shown, text = run_all(east, ("partner", "list", "--json"), ("partner", "show", "north-wold", "--json"),
                                  ("partner", "show", "north-wold"))
    assert listed.code == shown.code == text.code == 0, (listed.err, shown.err, text.err)
    assert listed.json() == [pinned]
    assert shown.json() == {**pinned, "card": document}
    assert "North Wold District Council (north-wold)" in text.out and card.age_recipient in text.out

    refreshed = east("partner", "add", str(card_file))
    assert refreshed.code == 0 and "Pinned North Wold District Council" in refreshed.out, refreshed.err


def test_card_on_stdout_and_from_stdin(initialised: Cli, east: Cli) -> None:
    printed = east("card")
    assert printed.code == 0, printed.err
    card, _ = parse_card(printed.out, now=datetime.now(UTC))
    assert card.endpoint == "https://east-marsh.example/orgs/east-marsh"
    added = initialised("partner", "add", "-", "--json", input=printed.out)
    assert added.code == 0, added.err
    assert added.json()["partner"] == "east-marsh"


def test_refusals_are_one_line_with_exit_codes(initialised: Cli, east: Cli, tmp_path: Path) -> None:
    own = tmp_path / "east.card.json"
    assert east("card", "--out", str(own)).code == 0
    document = json.loads(own.read_text(encoding="utf-8"))
    tampered = tmp_path / "tampered.json"
    document["body"]["name"] = "Someone Else"
    tampered.write_text(json.dumps(document), encoding="utf-8")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("this is not a card", encoding="utf-8")

    results = run_all(
        initialised, ("partner", "add", str(tampered)), ("partner", "add", str(garbage)),
        ("partner", "add", str(tmp_path / "missing.json")), ("partner", "show", "east-marsh"))
    assert "does not verify" in one_line_refusal(results[0], 1)
    assert "not valid JSON" in one_line_refusal(results[1], 1)
    assert "no card file" in one_line_refusal(results[2], 2)
    assert "not a partner of north-wold" in one_line_refusal(results[3], 1)
    assert "does not pin itself" in one_line_refusal(east("partner", "add", str(own)), 1)
    assert initialised("partner", "list", "--json").json() == []


def test_a_key_change_needs_replace(initialised: Cli, east: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert east("card", "--out", str(first)).code == 0
    rebuilt = new_home(tmp_path, "east-rebuilt", "east-marsh")  # same id, new keys
    assert rebuilt("card", "--out", str(second)).code == 0
    assert initialised("partner", "add", str(first)).code == 0

    refused = initialised("partner", "add", str(second))
    assert "--replace" in one_line_refusal(refused, 1)
    before = initialised("partner", "show", "east-marsh", "--json").json()
    assert before["signing_key"] == json.loads(first.read_text())["body"]["signing_key"]

    replaced = initialised("partner", "add", str(second), "--replace", "--json")
    assert replaced.code == 0, replaced.err
    assert replaced.json()["signing_key"] == json.loads(second.read_text())["body"]["signing_key"]
    log = initialised("audit", "log", "--object", "east-marsh", "--json").json()
    assert [(e["action"], e["outcome"], e["details"].get("change")) for e in log] == [
        ("partner.add", "ok", "new"), ("partner.add", "refused", None), ("partner.add", "ok", "key-replaced")]
