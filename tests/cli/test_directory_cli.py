"""``civicshare directory`` through the real command: operate a directory, then trust it.

north-wold (on each backend in turn) operates the directory and also trusts it, as a member would.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli
from tests.cli.test_audit_cli import one_line_refusal, run_all

NAME = "Fenland Federation"


def test_operate_publish_and_trust_a_directory(initialised: Cli, tmp_path: Path) -> None:
    card_file, edition = tmp_path / "card.json", tmp_path / "edition.json"
    made, started = run_all(initialised, ("card", "--out", str(card_file)),
                            ("directory", "init", "--name", NAME, "--json"))
    assert made.code == 0 and started.code == 0, (made.err, started.err)
    operated = started.json()
    assert operated["name"] == NAME and operated["operator_key"].startswith("ed25519:")
    fingerprint = operated["fingerprint"]

    added = initialised("directory", "add", str(card_file))
    assert added.code == 0 and "Listed North Wold District Council (north-wold)" in added.out, added.err
    revoked = initialised("directory", "revoke", "east-marsh", "--reason", "left the federation")
    assert revoked.code == 0, revoked.err
    published = initialised("directory", "publish", "--out", str(edition), "--json")
    assert published.code == 0, published.err
    summary = published.json()
    assert (summary["serial"], summary["members"]) == (1, ["north-wold"])
    assert summary["revocations"][0]["org_id"] == "east-marsh"
    assert json.loads(edition.read_text())["civicshare"] == "directory"
    assert (edition.stat().st_mode & 0o777) == 0o644

    wrong = initialised("directory", "use", str(edition), "--operator-key",
                        "ed25519:" + "A" * 43 + "=")
    assert "not the pinned key" in one_line_refusal(wrong, 1)
    again = initialised("directory", "publish", "--out", str(edition))
    assert "already exists" in one_line_refusal(again, 1)

    used = initialised("directory", "use", str(edition))
    assert used.code == 0, used.err
    assert f"now trusts the directory {NAME}" in used.out and fingerprint in used.out
    assert "pinned on first use" in used.err

    listed, shown = run_all(initialised, ("directory", "list", "--json"), ("directory", "show", NAME))
    assert listed.code == 0 and shown.code == 0, (listed.err, shown.err)
    [trusted] = listed.json()
    assert (trusted["name"], trusted["serial"], trusted["fingerprint"]) == (NAME, 1, fingerprint)
    assert trusted["source"] == str(edition.resolve()) and trusted["last_error"] is None
    assert "revoked:      east-marsh on " in shown.out and "left the federation" in shown.out
    assert "members:      north-wold" in shown.out

    missing = initialised("directory", "show", "Nope")
    assert "does not trust a directory called 'Nope'" in one_line_refusal(missing, 1)
