"""Charts drawn on the server as accessible SVG: quality per field, and transfers per day.

Each chart is laid out here (plain numbers) and drawn by a template under templates/charts/ as an SVG
with ``role="img"``, a ``<title>`` and a description, beside a table of the same data, so that nobody
needs to see the picture to get the numbers. Values are written by each bar, and series differ in
shape as well as colour, so colour is never the only cue. No script, no inline style: the CSP holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from civicshare.schemas.quality import QualityReport

# GOV.UK colours with at least 3:1 contrast on white (WCAG 1.4.11).
BLUE, GREEN, BLACK, GREY = "#1d70b8", "#00703c", "#0b0c0c", "#505a5f"
LINE = "#b1b4b6"
WIDTH = 640
LABEL_WIDTH = 200  # room for the field names left of the bars
VALUE_ROOM = 56  # room right of a bar for its value
BAR = 14
GAP = 14


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    dashed: bool = False  # the second series is drawn with a dashed outline: shape as well as colour


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: Series
    text: str  # the value written by the bar
    text_x: float
    text_y: float
    label: str  # what the bar is in words
    anchor: str = "start"  # SVG text-anchor of the value


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG text-anchor


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    """A chart laid out, and the same data as a table."""

    id: str
    title: str
    description: str
    width: int
    height: int
    series: tuple[Series, ...]
    bars: tuple[Bar, ...]
    texts: tuple[Text, ...]
    lines: tuple[Line, ...]
    caption: str
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # which columns hold numbers (right-aligned in the table)


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _pct(value: float | None) -> str:
    return "not checked" if value is None else f"{100 * value:.0f}%"


def quality_chart(report: QualityReport, chart_id: str = "quality-chart") -> Chart | None:
    """Completeness and validity of each field, as horizontal bars from 0 to 100%; None without fields."""
    if not report.fields:
        return None
    complete = Series("Complete (has a value)", BLUE)
    valid = Series("Valid (passes its checks)", GREEN, dashed=True)
    span = WIDTH - LABEL_WIDTH - VALUE_ROOM
    top = 40  # room for the scale
    group = 2 * BAR + GAP
    bars: list[Bar] = []
    texts = [Text(LABEL_WIDTH + span * p / 100, top - 10, f"{p}%", "middle") for p in (0, 25, 50, 75, 100)]
    lines = [Line(LABEL_WIDTH + span * p / 100, top - 4, LABEL_WIDTH + span * p / 100,
                  top + group * len(report.fields)) for p in (0, 25, 50, 75, 100)]
    rows = []
    for i, field in enumerate(report.fields):
        y = top + i * group + GAP / 2
        texts.append(Text(LABEL_WIDTH - 8, y + BAR + 4, _short(field.name), "end"))
        for j, (series, value) in enumerate(((complete, field.completeness), (valid, field.validity))):
            width = 0.0 if value is None else span * value
            bar_y = y + j * BAR
            bars.append(Bar(LABEL_WIDTH, bar_y, width, BAR - 2, series, _pct(value), LABEL_WIDTH + width + 6,
                            bar_y + BAR - 3, f"{field.name}: {series.name.lower()} {_pct(value)}"))
        rows.append((field.name, _pct(field.completeness), _pct(field.validity), f"{field.missing:,}",
                     f"{field.invalid:,}"))
    height = top + group * len(report.fields) + 8
    weakest = min(report.fields, key=lambda f: (f.completeness, f.validity if f.validity is not None else 1.0))
    description = (f"Bars for {len(report.fields)} fields, from 0 to 100%. The least complete field is "
                   f"{weakest.name} at {_pct(weakest.completeness)} complete.")
    return Chart(chart_id, "Quality per field", description, WIDTH, int(height), (complete, valid), tuple(bars),
                 tuple(texts), tuple(lines), "Quality per field",
                 ("Field", "Complete", "Valid", "Missing values", "Invalid values"),
                 tuple(rows), (False, True, True, True, True))


def _day(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def transfers_chart(today: date, sent: Iterable[datetime] | None, received: Iterable[datetime],
                    days: int = 14, chart_id: str = "transfers-chart") -> Chart:
    """Transfers sent (when the role may see the ledger; else ``sent`` is None) and received each day
    over the last ``days`` days, as columns."""
    first = today - timedelta(days=days - 1)
    dates = [first + timedelta(days=n) for n in range(days)]

    def count(moments: Iterable[datetime]) -> list[int]:
        per_day = dict.fromkeys(dates, 0)
        for moment in moments:
            d = _day(moment)
            if d in per_day:
                per_day[d] += 1
        return [per_day[d] for d in dates]

    series: list[tuple[Series, list[int]]] = []
    if sent is not None:
        series.append((Series("Sent", BLUE), count(sent)))
    series.append((Series("Received", GREEN, dashed=bool(series)), count(received)))
    top, bottom, left = 24, 44, 40
    plot = 180
    highest = max([1, *(n for _s, counts in series for n in counts)])
    scale = _nice(highest)
    column = (WIDTH - left - 8) / days
    bar = min(18.0, (column - 6) / len(series))
    bars: list[Bar] = []
    texts = [Text(left - 6, top + plot - plot * v / scale + 4, str(v), "end") for v in _ticks(scale)]
    lines = [Line(left, top + plot - plot * v / scale, WIDTH - 8, top + plot - plot * v / scale)
             for v in _ticks(scale)]
    for i, d in enumerate(dates):
        x0 = left + i * column + (column - bar * len(series)) / 2
        for j, (s, counts) in enumerate(series):
            n = counts[i]
            h = plot * n / scale
            x = x0 + j * bar
            bars.append(Bar(x, top + plot - h, bar - 2, h, s, str(n) if n else "", x + (bar - 2) / 2,
                            top + plot - h - 4, f"{d:%d %b}: {n} {s.name.lower()}", "middle"))
        if i % 2 == (days - 1) % 2:  # every other day, ending with today
            texts.append(Text(left + i * column + column / 2, top + plot + 18, f"{d.day} {d:%b}", "middle"))
    totals = [sum(counts) for _s, counts in series]
    description = (f"Columns for each of the last {days} days, ending today. In all: "
                   + ", ".join(f"{t} {s.name.lower()}" for (s, _c), t in zip(series, totals, strict=True)) + ".")
    head = ("Day", *(s.name for s, _c in series))
    rows = tuple((f"{d.day} {d:%B %Y}", *(str(counts[i]) for _s, counts in series)) for i, d in enumerate(dates))
    return Chart(chart_id, f"Transfers per day, last {days} days", description, WIDTH, top + plot + bottom,
                 tuple(s for s, _c in series), tuple(bars), tuple(texts), tuple(lines),
                 f"Transfers per day, last {days} days", head, rows, (False, *(True for _s in series)))


def _nice(highest: int) -> int:
    """The top of the scale: the highest value rounded up to 1, 2 or 5 times a power of ten."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if highest <= step * m:
                return step * m
        step *= 10


def _ticks(scale: int) -> Sequence[int]:
    if scale <= 5:
        return list(range(scale + 1))
    return [scale * k // 4 for k in range(5)] if scale % 4 == 0 else [0, scale // 2, scale]
