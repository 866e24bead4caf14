"""The quality report as one self-contained HTML page: no scripts, no style sheets or fonts fetched.

Every figure is written as text; the bars are inline SVG drawn beside it, hidden from screen readers
because the text already says the same. The markup is also well-formed XML, so tools can read it.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from civicshare.schemas.quality import QualityReport

_STYLE = """
body { font-family: Arial, Helvetica, sans-serif; color: #0b0c0c; background: #fff; margin: 0; line-height: 1.4; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 2rem; margin: 1rem 0 .5rem; }
h2 { font-size: 1.5rem; margin: 2rem 0 .5rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .25rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: bold; padding: .25rem 0; }
th, td { border-bottom: 1px solid #b1b4b6; padding: .4rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { vertical-align: middle; margin-right: .4rem; }
.score { font-size: 3rem; font-weight: bold; }
.note { color: #484949; }
"""
# GOV.UK colours with enough contrast against white and against the light grey track.
_GOOD, _FAIR, _POOR, _TRACK = "#00703c", "#8a5300", "#d4351c", "#dddddd"


def _pct(fraction: float | None) -> str:
    return "not checked" if fraction is None else f"{100 * fraction:.1f}%"


def _colour(fraction: float) -> str:
    return _GOOD if fraction >= 0.95 else _FAIR if fraction >= 0.8 else _POOR


def _bar(fraction: float | None, width: int = 120) -> str:
    if fraction is None:
        return ""
    filled = max(0.0, min(1.0, fraction)) * 100
    return (f'<svg class="bar" aria-hidden="true" focusable="false" width="{width}" height="14" '
            f'viewBox="0 0 100 14" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
            f'<rect width="100" height="14" fill="{_TRACK}" />'
            f'<rect width="{filled:.2f}" height="14" fill="{_colour(fraction)}" /></svg>')


def _rows(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in numbers) if numbers else "none"


def _groups(groups: tuple[tuple[int, ...], ...]) -> str:
    if not groups:
        return "none"
    return "; ".join("rows " + ", ".join(str(n) for n in g) for g in groups)


def _table(caption: str, head: list[str], body: list[list[str]], numeric: set[int]) -> str:
    heads = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    lines = []
    for row in body:
        cells = [f'<th scope="row">{row[0]}</th>']
        cells += [f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row) if i]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{heads}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>")


def render(report: QualityReport, *, title: str | None = None) -> str:
    """The page for ``report``; ``title`` names the dataset (escaped like every other text)."""
    name = escape(title) if title else "a dataset"
    parts = report.parts
    score = report.score
    summary = [
        ("Overall score", f'<span class="score">{score:g}</span> out of 100 {_bar(score / 100, 200)}'),
        ("Rows", f"{report.rows:,}"),
        ("Rows with a problem", f"{report.invalid_rows:,} (first: {_rows(report.invalid_row_examples)})"),
        ("Schema", escape(report.schema) if report.schema else "none: only completeness and copies are checked"),
        ("Checked on", report.checked_on.isoformat()),
    ]
    out = [
        '<!DOCTYPE html>\n<html lang="en" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8" />',
        '<meta name="viewport" content="width=device-width, initial-scale=1" />',
        f"<title>Quality report: {name}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>Quality report: {name}</h1>",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in summary) + "</dl>",
        "<h2>How the score is computed</h2>", f"<p>{escape(report.how)}</p>",
        _table("Parts of the score", ["Part", "Weight", "Result"],
               [[k.capitalize(), f"{report.weights[k]}%",
                 "does not apply" if v is None else f"{_bar(v)}{_pct(v)}"] for k, v in parts.items()], {1}),
        "<h2>Fields</h2>",
        _table("Completeness and validity of each field",
               ["Field", "Required", "Values present", "Complete", "Invalid values", "Valid", "First invalid rows",
                "Checks"],
               [[escape(f.name), "yes" if f.required else "no",
                 f"{f.present:,}" if f.in_data else "no such column",
                 f"{_bar(f.completeness)}{_pct(f.completeness)}", f"{f.invalid:,}",
                 f"{_bar(f.validity)}{_pct(f.validity)}", _rows(f.examples), escape(f.rule or "none")]
                for f in report.fields], {2, 4}),
        "<h2>Uniqueness</h2>",
    ]
    if report.identifiers:
        out.append(_table(
            "Identifiers that should be unique", ["Identifier", "Values", "Distinct", "Repeated values",
                                                  "Rows repeating a value", "Examples"],
            [[escape(d.field or ""), f"{d.values:,}", f"{d.distinct:,}", f"{d.repeated:,}", f"{d.surplus:,}",
              _groups(d.examples)] for d in report.identifiers], {1, 2, 3, 4}))
    dup = report.duplicate_rows
    out.append(f"<p>Exact duplicate rows: {dup.surplus:,} row(s) copy another row "
               f"({dup.repeated:,} distinct row(s) appear more than once). Examples: {_groups(dup.examples)}.</p>")
    out.append("<h2>Consistency</h2>")
    if report.consistency:
        out.append(_table(
            "Identifiers that come with more than one value of a field that should not change",
            ["Identifier", "Field", "Identifiers checked", "With conflicting values", "Rows involved", "Examples"],
            [[escape(c.identifier), escape(c.field), f"{c.identifiers:,}", f"{c.conflicting:,}", f"{c.rows:,}",
              _groups(c.examples)] for c in report.consistency], {2, 3, 4}))
    else:
        out.append("<p>No consistency checks apply to this dataset.</p>")
    out.append('<p class="note">Row numbers count data rows from 1; the header row is not counted. '
               "This report holds no values from the data, only counts and row numbers.</p>")
    out.append("</main></body></html>\n")
    return "\n".join(out)
