"""``civicshare quality ID [--json | --html FILE]``: a dataset's quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicshare.cli.context import STATE, out, print_json, print_table, write_new_file
from civicshare.cli.org import OrgOpt
from civicshare.errors import UsageError
from civicshare.schemas.quality import QualityReport


def register(app: typer.Typer) -> None:
    app.command("quality")(quality)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _groups(groups: tuple[tuple[int, ...], ...]) -> str:
    return "; ".join(", ".join(str(n) for n in g) for g in groups) or "-"


def _print(report: QualityReport, name: str, holding_id: str) -> None:
    out.print(f"Quality of {name} ({holding_id}): {report.score:g} out of 100. {report.rows:,} rows, "
              f"{report.invalid_rows:,} with a problem. Schema: {report.schema or 'none'}.", markup=False)
    print_table("Fields", ["field", "required", "complete", "valid", "invalid", "first invalid rows", "checks"],
                [[f.name, "yes" if f.required else "", _pct(f.completeness) if f.in_data else "no column",
                  _pct(f.validity), f.invalid, ", ".join(str(n) for n in f.examples), f.rule or ""]
                 for f in report.fields])
    for d in report.identifiers:
        out.print(f"{d.field}: {d.repeated:,} value(s) repeated, {d.surplus:,} row(s) repeat one; "
                  f"rows: {_groups(d.examples)}", markup=False)
    dup = report.duplicate_rows
    out.print(f"exact duplicate rows: {dup.surplus:,}; rows: {_groups(dup.examples)}", markup=False)
    for c in report.consistency:
        out.print(f"{c.identifier} with more than one {c.field}: {c.conflicting:,} of {c.identifiers:,}; "
                  f"rows: {_groups(c.examples)}", markup=False)
    out.print("How: " + report.how, markup=False)


def quality(
    holding_id: Annotated[str, typer.Argument(metavar="ID")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
    html: Annotated[Path | None, typer.Option("--html", metavar="FILE",
                                              help="Write the report as an HTML page; FILE must not exist.")]
    = None,
    org: OrgOpt = None,
) -> None:
    """A dataset's quality: completeness, validity, repeats, consistency and the score with how it is made."""
    if json_out and html is not None:
        raise UsageError("Choose one of --json and --html FILE.")
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        report = node.quality(actor, holding_id)
        if json_out:
            print_json(report.to_json())
            return
        holding = node.holding(actor, holding_id)
        if html is not None:
            write_new_file(html, report.to_html(title=holding.name))
            out.print(f"Wrote the quality report of {holding.name!r} (score {report.score:g}) to {html}.",
                      markup=False)
            return
        _print(report, repr(holding.name), holding.id)
