"""The data quality part of ``civicshare demo``: a messy council export, a mapping, and its quality report.

North Wold's adult social care system exports its clients the way such systems do: Windows-1252, one
"Name" column written "SURNAME, Forenames", dates of birth as 03/04/1980, 3/4/80 or spreadsheet serial
numbers, postcodes in any case with or without the space. The demo plants known faults (bad NHS and
NI numbers, missing and impossible dates of birth, a client entered twice with two dates of birth, a
row exported twice), asks civicshare to suggest a mapping, imports the file through a reviewed
mapping into the ``person`` schema and checks the quality report finds exactly what was planted.
Then the same file under the quarantine and reject policies. The export stays in memory, as the
residents file does; only the mapping and the report (which holds counts, never values) go on disk.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from faker import Faker

from civicshare.access import Actor
from civicshare.demo_nodes import DemoFailed
from civicshare.demo_nodes import check as _check
from civicshare.errors import InvalidInput
from civicshare.holdings.sampling import sample_rows
from civicshare.memfile import memory_file
from civicshare.node import Node
from civicshare.schemas.quality import QualityReport
from civicshare.schemas.suggest import SAMPLE_ROWS, suggest_mapping
from civicshare.schemas.validators import check as valid
from civicshare.synthetic import nhs_number

EXPORT = "care-clients.csv"
COLUMNS = ["Client ID", "Name", "DOB", "NHS No", "NI Number", "Address", "Town", "Post Code", "Tel", "Email"]
CLIENTS = 500
# Forenames council systems mangle when they are not Windows-1252 aware; all are in Windows-1252.
ACCENTED = ("Zoë", "Chloë", "Siân", "Seán", "Renée", "Dónal", "Ruairí", "José", "Inès", "Anaïs")
# Ofcom's drama ranges: numbers that are never anyone's.
PHONES = ("07700 900{:03d}", "01632 960{:03d}", "+44 (0)113 496 0{:03d}")
# The mapping as the records manager saved it after reviewing civicshare's suggestion.
REVIEWED_MAPPING = """\
# Adult social care clients into person: reviewed by the records manager from civicshare's suggestion.
version: 1
schema: person
fields:
  first_name:     {from: Name, transforms: [trim, {split_name: first}, title]}
  middle_names:   {from: Name, transforms: [trim, {split_name: middle}, title]}
  last_name:      {from: Name, transforms: [trim, {split_name: last}, title]}   # surnames come in capitals
  date_of_birth:  {from: DOB, transforms: [trim, {date: [dd/mm/yyyy, excel, dd/mm/yy]}]}
  nhs_number:     {from: NHS No, transforms: [trim, nhs_number]}
  ni_number:      {from: NI Number, transforms: [trim, ni_number]}
  address_line_1: {from: Address, transforms: [trim]}
  town:           {from: Town, transforms: [trim]}
  postcode:       {from: Post Code, transforms: [trim, postcode]}
  phone:          {from: Tel, transforms: [trim, phone]}
  email:          {from: Email, transforms: [trim, lower]}
"""


@dataclass
class Client:
    """One client as the truth has it, and the row the case system wrote for them."""

    first: str
    middle: str
    last: str
    born: date | None
    nhs: str
    ni: str
    postcode: str
    row: list[str] = field(default_factory=list)


@dataclass
class Planted:
    """The messy export and the faults planted in it, by 1-based data row."""

    data: bytes  # Windows-1252 CSV
    clients: list[Client]
    invalid: dict[str, list[int]]  # field -> rows whose value fails its check
    missing_dob: list[int]
    twins: tuple[int, int]  # one NHS number, two dates of birth
    copies: tuple[int, int]  # the same row exported twice

    @property
    def invalid_rows(self) -> list[int]:
        return sorted({r for rows in self.invalid.values() for r in rows} | set(self.missing_dob))


def _ni_number(rnd: random.Random) -> str:
    while True:
        ni = (rnd.choice("ABCEGHJKLMNPRSTWXYZ") + rnd.choice("ABCEGHJKLMNPRSTWXYZ")
              + f"{rnd.randrange(10**6):06d}" + rnd.choice("ABCD"))
        if valid("ni_number", ni) is None:  # a few prefixes (BG, GB, NK, ...) are never issued
            return ni


def _excel(born: date) -> str:
    return str((born - date(1899, 12, 30)).days)


def _render_dob(rnd: random.Random, born: date) -> str:
    style = rnd.random()
    if style < 0.2:
        return _excel(born)
    if style < 0.4 and born.year >= 1960:  # two-digit years only where they cannot be read wrongly
        return f"{born.day}/{born.month}/{born.year % 100:02d}"
    return f"{born.day:02d}/{born.month:02d}/{born.year}"


def _mess_postcode(rnd: random.Random, postcode: str) -> str:
    text = rnd.choice((postcode, postcode.lower(), postcode.title(), postcode.replace(" ", "")))
    return text.lower() if rnd.random() < 0.2 else text


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded if c.isalpha())


def _client(fake: Faker, rnd: random.Random, i: int, seen_nhs: set[str]) -> Client:
    first = rnd.choice(ACCENTED) if rnd.random() < 0.08 else fake.first_name()
    middle = fake.first_name() if rnd.random() < 0.3 else ""
    last = fake.last_name()
    born = date(1935, 1, 1) + timedelta(days=rnd.randrange(28_000))  # 1935 to 2011
    nhs = nhs_number(rnd)
    while nhs in seen_nhs:
        nhs = nhs_number(rnd)
    seen_nhs.add(nhs)
    ni = _ni_number(rnd) if born.year < 2010 and rnd.random() < 0.9 else ""
    while True:
        postcode = fake.postcode()
        if valid("postcode", postcode) is None:
            break
    client = Client(first, middle, last, born, nhs, ni, postcode)
    nhs_text = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if rnd.random() < 0.5 else nhs
    ni_text = rnd.choice((ni, ni.lower(), f"{ni[:2]} {ni[2:4]} {ni[4:6]} {ni[6:8]} {ni[8:]}")) if ni else ""
    forenames = f"{first} {middle}".strip()
    client.row = [
        f"ASC{100000 + i}", f"{last.upper()}, {forenames}", _render_dob(rnd, born), nhs_text, ni_text,
        fake.street_address().replace("\n", ", "), fake.city(), _mess_postcode(rnd, postcode),
        rnd.choice(PHONES).format(rnd.randrange(1000)) if rnd.random() < 0.8 else "",
        f"{_ascii(first)}.{_ascii(last)}{rnd.randrange(100)}@example.org".lower() if rnd.random() < 0.7 else "",
    ]
    return client


def messy_export(n: int = CLIENTS, seed: int = 6) -> Planted:
    """A deterministic export of ``n`` synthetic clients (Faker en_GB) with known faults planted."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rnd = random.Random(seed)  # noqa: S311 - seeded on purpose: the demo checks what it planted
    seen: set[str] = set()
    clients = [_client(fake, rnd, i, seen) for i in range(1, n + 1)]
    # Distinct rows for every fault, so each is counted once (row numbers are 1-based).
    rows = rnd.sample(range(1, n + 1), 15)
    twin_a, twin_b, copy_a, copy_b = sorted(rows[:2]) + sorted(rows[2:4])
    bad_nhs, bad_ni, bad_postcode, missing_dob, bad_dob = rows[4:7], rows[7:10], rows[10:11], rows[11:13], rows[13:15]

    def at(r: int) -> Client:
        return clients[r - 1]

    # Entered twice by two teams: same person and NHS number, no NI number the second time, and the date
    # of birth with day and month swapped (or, where that is no other date, one day out).
    original = at(twin_a)
    assert original.born is not None
    born = original.born
    swapped = date(born.year, born.day, born.month) if born.day <= 12 and born.day != born.month \
        else born + timedelta(days=1)
    twin = Client(original.first, original.middle, original.last, swapped, original.nhs, "", original.postcode)
    twin.row = [at(twin_b).row[0], original.row[1], f"{swapped.day:02d}/{swapped.month:02d}/{swapped.year}",
                original.row[3], "", *original.row[5:]]
    clients[twin_b - 1] = twin
    clients[copy_b - 1] = at(copy_a)  # the whole row, Client ID and all, exported twice
    for r in bad_nhs[:2]:  # a digit mistyped: the check digit no longer matches
        nhs = at(r).nhs
        at(r).row[3] = at(r).nhs = nhs[:4] + str((int(nhs[4]) + 1) % 10) + nhs[5:]
    at(bad_nhs[2]).row[3] = at(bad_nhs[2]).nhs = at(bad_nhs[2]).nhs[:9]  # a digit lost
    for r, prefix in zip(bad_ni, ("BG", "DA", "QX"), strict=True):  # prefixes HMRC never issues
        at(r).row[4] = at(r).ni = prefix + f"{rnd.randrange(10**6):06d}" + "A"
    at(bad_postcode[0]).row[7] = at(bad_postcode[0]).postcode[:-1]  # the last letter lost
    for r in missing_dob:
        at(r).row[2], at(r).born = "", None
    at(bad_dob[0]).row[2], at(bad_dob[0]).born = "31/02/1981", None  # no such day
    at(bad_dob[1]).row[2], at(bad_dob[1]).born = "14/03/2062", None  # typed 2062 for 1962
    for r in (*bad_nhs, *bad_ni):
        _check(valid("nhs_number" if r in bad_nhs else "ni_number", at(r).nhs if r in bad_nhs else at(r).ni)
               is not None, f"the fault planted in row {r} is a fault")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(c.row for c in clients)
    return Planted(buf.getvalue().encode("cp1252"), clients,
                   {"nhs_number": sorted(bad_nhs), "ni_number": sorted(bad_ni), "postcode": bad_postcode,
                    "date_of_birth": sorted(bad_dob)},
                   sorted(missing_dob), (twin_a, twin_b), (copy_a, copy_b))


@dataclass
class QualityResult:
    summary: dict[str, Any]
    checks: list[str]


def _records(node: Node, actor: Actor, holding_id: str) -> list[dict[str, Any]]:
    with memory_file("export.jsonl") as (fd, out):
        node.export(actor, holding_id, out, "jsonl", overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return [json.loads(line) for line in fh]


def _check_mapped(records: list[dict[str, Any]], planted: Planted) -> None:
    """Every row as the truth has it: names split, dates of birth read whatever their form, identifiers
    and postcodes in standard form."""
    _check(len(records) == len(planted.clients), "every client imported")
    for r, (got, client) in enumerate(zip(records, planted.clients, strict=True), start=1):
        want = {"first_name": client.first, "middle_names": client.middle or None,
                "last_name": client.last.casefold(), "nhs_number": client.nhs, "ni_number": client.ni or None}
        have = {**{k: got[k] for k in want}, "last_name": (got["last_name"] or "").casefold()}
        _check(have == want, f"row {r} of {EXPORT} mapped as planted ({have} != {want})")
        if client.born is not None:
            _check(got["date_of_birth"] == client.born.isoformat(), f"row {r}'s date of birth read as planted")
        if r not in planted.invalid["postcode"]:
            _check(got["postcode"] == client.postcode, f"row {r}'s postcode in standard form")
    _check({"Zoë", "Siân"} <= {str(got["first_name"]) for got in records}, "Zoë and Siân came through intact")


def _expected_parts(report: QualityReport, planted: Planted) -> dict[str, float]:
    """The four parts of the score by the documented rule (docs/schemas.md), from the planted counts
    (the report gives only which fields have a check, and how many values each holds)."""
    n = len(planted.clients)
    invalid = {name: len(rows) for name, rows in planted.invalid.items()}
    checked = [f for f in report.fields if f.rule is not None and f.present]
    nhs = [c.nhs for c in planted.clients]
    ni = [c.ni for c in planted.clients if c.ni]
    with_dob = {c.nhs for c in planted.clients} - {planted.clients[r - 1].nhs for r in planted.missing_dob}
    return {
        "completeness": (1 + 1 + (n - len(planted.missing_dob)) / n) / 3,  # first and last names always given
        "validity": sum(1 - invalid.get(f.name, 0) / f.present for f in checked) / len(checked),
        "uniqueness": (len(set(nhs)) / len(nhs) + len(set(ni)) / len(ni) + (n - 1) / n) / 3,  # one exact copy
        "consistency": ((1 - 1 / len(with_dob)) + 1) / 2,  # one NHS number conflicts; no NI number does
    }


def _check_report(report: QualityReport, planted: Planted) -> None:
    n = len(planted.clients)
    _check(report.rows == n and report.invalid_rows == len(planted.invalid_rows),
           f"the report counts {len(planted.invalid_rows)} invalid rows of {n} (it says {report.invalid_rows})")
    _check(list(report.invalid_row_examples) == planted.invalid_rows[:5], "the report's first invalid rows")
    for f in report.fields:
        rows = planted.invalid.get(f.name, [])
        _check(f.invalid == len(rows) and list(f.examples) == rows[:5],
               f"{f.name}: {len(rows)} invalid in rows {rows} (the report: {f.invalid} in {list(f.examples)})")
    _check(report.field("date_of_birth").missing == len(planted.missing_dob), "missing dates of birth counted")
    nhs = next(d for d in report.identifiers if d.field == "nhs_number")
    _check(nhs.repeated == 2 and sorted(nhs.examples) == sorted([planted.twins, planted.copies]),
           f"the repeated NHS numbers are rows {planted.twins} and {planted.copies} ({nhs.examples})")
    _check(report.duplicate_rows.surplus == 1 and list(report.duplicate_rows.examples) == [planted.copies],
           "the row exported twice is found")
    conflicts = {c.identifier: c for c in report.consistency}
    _check(conflicts["nhs_number"].conflicting == 1 and list(conflicts["nhs_number"].examples) == [planted.twins],
           "the NHS number with two dates of birth is found")
    _check(conflicts["ni_number"].conflicting == 0, "no NI number comes with two dates of birth")
    parts = _expected_parts(report, planted)
    _check(all(abs((report.parts[k] or 0) - v) < 1e-9 for k, v in parts.items()),
           f"each part of the score as the documented rule gives it ({report.parts} != {parts})")
    expected = round(100 * sum(report.weights[k] * v for k, v in parts.items()) / sum(report.weights.values()), 1)
    _check(report.score == expected, f"the score is {expected} by the documented rule ({report.score})")


def _rows(rows: tuple[int, ...] | list[int]) -> str:
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r) for r in rows)


def _show_report(report: QualityReport, say: Callable[[str], None]) -> None:
    say(f"Quality report: {report.score:g} out of 100; {report.invalid_rows} of {report.rows} rows have a problem "
        f"(first: {_rows(report.invalid_row_examples)}).")
    say(f"  How: {report.how}")
    worst = sorted((f for f in report.fields if f.invalid or (f.required and f.missing)),
                   key=lambda f: (-(f.invalid + (f.missing if f.required else 0)), f.name))
    say("  Fields with problems, worst first:")
    for f in worst:
        valid_text = "" if f.validity is None else f", {100 * f.validity:.1f}% valid"
        missing = f", {f.missing} missing (required)" if f.required and f.missing else ""
        say(f"    {f.name:<14} {f.invalid} invalid of {f.present}{valid_text}{missing}; {_rows(f.examples)}"
            f" ({f.rule})")
    for d in report.identifiers:
        groups = "; ".join(_rows(g) for g in d.examples) or "none"
        say(f"  Repeats of {d.field}: {d.repeated} {'value' if d.repeated == 1 else 'values'} shared ({groups}).")
    dup = report.duplicate_rows
    say(f"  Exact duplicate rows: {dup.surplus} ({'; '.join(_rows(g) for g in dup.examples) or 'none'}).")
    for c in report.consistency:
        groups = "; ".join(_rows(g) for g in c.examples)
        say(f"  {c.identifier} with more than one {c.field}: {c.conflicting} of {c.identifiers}"
            + (f" ({groups})." if groups else "."))


def _step(step: str | dict[str, Any]) -> str:
    """A transform in words for the screen (the terminal reads square brackets as markup)."""
    if isinstance(step, str):
        return step
    name, option = next(iter(step.items()))
    return f"{name} ({' or '.join(option) if isinstance(option, list) else option})"


def _suggest(node: Node, path: Path, say: Callable[[str], None]) -> str:
    """What ``civicshare mapping suggest care-clients.csv --schema person`` prints."""
    columns, rows = sample_rows(path, fmt="csv", label=EXPORT, limit=SAMPLE_ROWS)
    text = suggest_mapping(columns, rows, node.schemas.get("person"), source_label=EXPORT)
    suggested, reviewed = yaml.safe_load(text)["fields"], yaml.safe_load(REVIEWED_MAPPING)["fields"]
    say(f"civicshare suggested a mapping into person (as `civicshare mapping suggest {EXPORT} --schema person` "
        f"does) from the headers and the first {len(rows)} rows: {len(suggested)} fields, "
        f"{text.count('# REVIEW:')} guesses marked REVIEW, no values in it:")
    for target, rule in suggested.items():
        say(f"    {target:<15} from {rule['from']}: {', '.join(_step(step) for step in rule['transforms'])}")
    for want in ("split_name: first", "excel", "postcode", "nhs_number", "ni_number", "phone"):
        _check(want in text, f"the suggestion uses {want}")
    # The review: the suggestion as it is, with title case for names and e-mail addresses in lower case.
    added = {"first_name": ["title"], "middle_names": ["title"], "last_name": ["title"], "email": ["lower"]}
    _check(reviewed == {k: {"from": v["from"], "transforms": v["transforms"] + added.get(k, [])}
                        for k, v in suggested.items()}, "the reviewed mapping is the suggestion with two changes")
    return text


def run_quality(node: Node, actor: Actor, workdir: Path, say: Callable[[str], None]) -> QualityResult:
    """Suggest, map, import under each policy, and check the report against the planted faults."""
    planted = messy_export()
    n, bad = len(planted.clients), len(planted.invalid_rows)
    say(f"North Wold's adult social care system exported {n} clients as {EXPORT}: Windows-1252, one \"Name\" "
        "column (SURNAME, Forenames) with names such as Zoë and Siân, dates of birth as 03/04/1980, 3/4/80 or "
        "spreadsheet serial numbers, postcodes in any case. It is kept in memory, like the residents file.")
    mapping_file = workdir / "care-clients.yaml"
    with memory_file(EXPORT, planted.data) as (_fd, path):
        _suggest(node, path, say)
        mapping_file.write_text(REVIEWED_MAPPING, encoding="utf-8")
        say("The records manager reviewed it: every column as suggested; title case added to the names, as the "
            f"system writes surnames in capitals, and e-mail addresses in lower case. Saved as {mapping_file}.")

        options: dict[str, Any] = dict(label=EXPORT, schema="person", mapping=REVIEWED_MAPPING,
                                       mapping_label=mapping_file.name)
        flagged = node.import_dataset(actor, path, "care-clients", **options)
        _check(flagged.rows == n and flagged.encoding == "windows-1252" and flagged.schema == "person@1.0.0",
               "the export imported whole, read as Windows-1252, into person@1.0.0")
        say(f"Imported it through the mapping as {flagged.id} ({flagged.name}) under the default policy, flag: all "
            f"{flagged.rows} rows kept, read as Windows-1252, now in person@1.0.0; the quality report was computed "
            "on import and stored with it.")
        _check_mapped(_records(node, actor, flagged.id), planted)
        say("Exported the dataset and checked every row against the truth: names split (Zoë intact), every date "
            "of birth read whatever its form, NHS and NI numbers and postcodes in standard form.")

        report = node.quality(actor, flagged.id)
        _show_report(report, say)
        _check_report(report, planted)
        say(f"Checked against what was planted: {bad} invalid rows, each fault in its row, the client entered "
            "twice, the row exported twice, and the score by the documented rule.")
        html = workdir / "care-clients-quality.html"
        html.write_text(report.to_html(title=flagged.name), encoding="utf-8")
        identifiers = {c.nhs for c in planted.clients} | {c.ni for c in planted.clients if c.ni}
        shown = report.dumps() + html.read_text(encoding="utf-8")
        _check("<script" not in shown and not any(value in shown for value in identifiers),
               "the report holds counts and row numbers only, and the page no scripts")
        say(f"Wrote the report as a self-contained web page to {html} ({html.stat().st_size:,} bytes, no scripts; "
            "removed with the rest at the end). It holds counts and row numbers, never a value from the data.")

        kept = node.import_dataset(actor, path, "care-clients-checked", policy="quarantine", **options)
        held = node.quarantine_of(actor, kept.id)
        _check(held is not None and held.rows == bad and kept.rows == n - bad and held.quarantine_of == kept.id,
               "the quarantine policy sets the invalid rows aside in a second holding")
        assert held is not None
        kept_report, held_report = node.quality(actor, kept.id), node.quality(actor, held.id)
        _check(kept_report.invalid_rows == 0 and held_report.invalid_rows == bad, "each part has its own report")
        say(f"Imported it again under the quarantine policy: the {kept.rows} valid rows in {kept.id} "
            f"\"{kept.name}\" (score {kept_report.score:g}), the {held.rows} invalid rows set aside in {held.id} "
            f"\"{held.name}\" (score {held_report.score:g}), each under its own key with its own report.")

        before = len(node.list_holdings(actor))
        try:
            node.import_dataset(actor, path, "care-clients-rejected", policy="reject", **options)
            raise DemoFailed("Demo check failed: the reject policy refused nothing")
        except InvalidInput as exc:
            refusal = exc.message
        _check(len(node.list_holdings(actor)) == before, "a rejected file leaves nothing stored")
        say(f"And under the reject policy: refused: {refusal.rstrip('.')}.")
    summary = {"dataset": flagged.id, "rows": n, "score": report.score, "invalid_rows": report.invalid_rows,
               "quarantine": {"kept": kept.id, "held": held.id, "rows": held.rows}}
    checks = ["mapping suggested", "messy export mapped", "quality report finds the planted faults",
              "report holds no values", "quarantine policy", "reject policy"]
    return QualityResult(summary, checks)
