"""The data quality part of the demo: its messy export is what it says, and its checks run, and bite, on a
real node on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from civicshare.demo_nodes import DemoFailed
from civicshare.demo_quality import CLIENTS, COLUMNS, _check_report, messy_export, run_quality
from civicshare.node import Node
from tests.conftest import actor

NORTH = "north-wold"


def test_the_export_is_repeatable_windows_1252_with_the_faults_it_claims() -> None:
    planted = messy_export()
    assert planted.data == messy_export().data
    with pytest.raises(UnicodeDecodeError):
        planted.data.decode("utf-8")
    text = planted.data.decode("cp1252")
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert "Zoë" in text and "Siân" in text
    assert len(text.splitlines()) == CLIENTS + 1
    # Every fault has its own row: 3 NHS, 3 NI, 1 postcode, 2 impossible and 2 missing dates of birth.
    assert len(planted.invalid_rows) == 11
    twin_a, twin_b = planted.twins
    assert planted.clients[twin_a - 1].nhs == planted.clients[twin_b - 1].nhs
    assert planted.clients[twin_a - 1].born != planted.clients[twin_b - 1].born
    copy_a, copy_b = planted.copies
    assert planted.clients[copy_a - 1].row == planted.clients[copy_b - 1].row


def test_the_demo_section_runs_and_leaves_the_holdings_it_describes(node: Node, tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_quality(node, actor(NORTH), tmp_path, lines.append)
    assert result.summary["invalid_rows"] == 11 and result.summary["rows"] == CLIENTS
    assert len(result.checks) == 6
    names = sorted(h.name for h in node.list_holdings(actor(NORTH)))
    assert names == ["care-clients", "care-clients-checked", "care-clients-checked (quarantine)"]
    assert (tmp_path / "care-clients-quality.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert any("refused under the reject policy" in line for line in lines)
    # Square brackets would be eaten by the terminal's markup.
    assert not any("[" in line for line in lines)


def test_the_report_checks_fail_when_the_report_differs_from_what_was_planted(node: Node, tmp_path: Path) -> None:
    run_quality(node, actor(NORTH), tmp_path, lambda _line: None)
    flagged = next(h for h in node.list_holdings(actor(NORTH)) if h.name == "care-clients")
    report = node.quality(actor(NORTH), flagged.id)
    planted = messy_export()
    _check_report(report, planted)
    for changed in (dataclasses.replace(planted, missing_dob=planted.missing_dob[:1]),
                    dataclasses.replace(planted, twins=(1, 2)),
                    dataclasses.replace(planted, invalid={**planted.invalid, "postcode": []})):
        with pytest.raises(DemoFailed):
            _check_report(report, changed)
