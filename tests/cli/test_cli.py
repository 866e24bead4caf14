"""The command line, end to end: exit codes, one-line refusals, JSON output, on both backends."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.cli.conftest import Cli


def test_init_keys_list_and_org_add(initialised: Cli) -> None:
    keys = initialised("keys", "list", "--json")
    assert keys.code == 0, keys.err
    register = keys.json()
    assert {k["purpose"] for k in register} == {"signing", "receiving", "kek"}
    for key in register:
        assert set(key) >= {"id", "organisation", "purpose", "algorithm", "custody", "location", "created",
                            "last_rotated", "state"}
        assert key["custody"] == "file" and "north-wold.keystore" in key["location"]
    added = initialised("org", "add", "--org", "south-fen", "--name", "South Fen Borough Council")
    assert added.code == 0, added.err
    ambiguous = initialised("holdings", "list")
    assert ambiguous.code == 2 and "--org" in ambiguous.err
    table = initialised("keys", "list", "--org", "south-fen")
    assert table.code == 0 and "Ed25519" in table.out


def test_import_export_shred_cycle(initialised: Cli, tmp_path: Path) -> None:
    src = tmp_path / "residents.csv"
    src.write_text("id,name,postcode\n1,Ada,AB1 2CD\n2,Grace,EF3 4GH\n", encoding="utf-8")
    imported = initialised("import", str(src), "--dataset", "residents", "--json")
    assert imported.code == 0, imported.err
    hid = imported.json()["id"]
    listed = initialised("holdings", "list", "--json").json()
    assert [h["id"] for h in listed] == [hid] and listed[0]["rows"] == 2
    shown = initialised("holdings", "show", hid)
    assert shown.code == 0 and "postcode" in shown.out
    for fmt in ("csv", "jsonl", "parquet", "xlsx"):
        out = tmp_path / f"out.{fmt}"
        done = initialised("export", hid, "--out", str(out), "--format", fmt)
        assert done.code == 0, done.err
        assert out.stat().st_size > 0
    assert (tmp_path / "out.csv").read_text() == src.read_text()
    again = initialised("export", hid, "--out", str(tmp_path / "out.csv"))
    assert again.code == 1 and "already exists" in again.err
    refused = initialised("shred", hid)
    assert refused.code == 2 and "--yes" in refused.err
    assert initialised("shred", hid, "--yes").code == 0
    gone = initialised("export", hid, "--out", str(tmp_path / "late.csv"))
    assert gone.code == 1 and "shredded on" in gone.err and "Traceback" not in gone.err
    assert not (tmp_path / "late.csv").exists()


def test_a_documents_fixity_is_recorded_and_shown(initialised: Cli, tmp_path: Path) -> None:
    src = tmp_path / "minutes.txt"
    src.write_bytes(b"Minutes of the shared services board\n" * 100)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    imported = initialised("import", str(src), "--document", "--json")
    assert imported.code == 0, imported.err
    assert imported.json()["sha256"] == digest
    shown = initialised("holdings", "show", imported.json()["id"])
    assert shown.code == 0 and f"sha256: {digest}" in shown.out


def test_bad_file_is_one_clear_line_with_exit_1(initialised: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,name\n1,a,b\n", encoding="utf-8")
    result = initialised("import", str(bad), "--dataset", "x")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "name" in result.err and "line 1" in result.err
    assert initialised("holdings", "list", "--json").json() == []


def test_wrong_passphrase_and_missing_home(initialised: Cli, tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("hello")
    wrong = initialised("import", str(src), "--document", CIVICSHARE_PASSPHRASE="wrong wrong wrong")
    assert wrong.code == 1 and "passphrase is wrong" in wrong.err and "Traceback" not in wrong.err
    nowhere = initialised("holdings", "list", CIVICSHARE_HOME=str(tmp_path / "nowhere"))
    assert nowhere.code == 1 and "civicshare init" in nowhere.err


def test_usage_errors_exit_2(initialised: Cli, tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("hello")
    assert initialised("import", str(src)).code == 2
    assert initialised("keys", "rotate").code == 2
    assert initialised("user", "add", "sam", "--role", "wizard").code == 2
    assert initialised("no-such-command").code == 2


def test_user_add_prints_token_once_and_rotate(initialised: Cli) -> None:
    added = initialised("user", "add", "sam", "--role", "caseworker", "--json")
    assert added.code == 0 and added.json()["token"].startswith("cs1.")
    rotated = initialised("keys", "rotate", "--kek", "--json")
    assert rotated.code == 0 and rotated.json()["rewrapped"] == 0
    keks = [k for k in initialised("keys", "list", "--json").json() if k["purpose"] == "kek"]
    assert sorted(k["state"] for k in keks) == ["active", "destroyed"]


def test_export_age_identity(initialised: Cli, tmp_path: Path) -> None:
    out = tmp_path / "identity.txt"
    exported = initialised("keys", "export", "--age-identity", "--out", str(out))
    assert exported.code == 0 and "Warning" in exported.err and "audit log" in exported.err
    assert "AGE-SECRET-KEY-1" in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600
