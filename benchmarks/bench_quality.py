"""Benchmark validating and profiling a person file against `frictionless validate`, in the same run.

    python benchmarks/bench_quality.py [--rows N] [--runs K] [--frictionless-rows M] [--work-dir DIR]

Generates (once, then cached in the temp folder) a synthetic person CSV in the shipped ``person``
schema's fields and standard forms, with about 3% of rows carrying one fault each: a wrong NHS check
digit, an NI prefix HMRC never issues, a malformed postcode, an impossible or future date of birth, a
broken e-mail address or phone number, an empty required field, an NHS number given with another date
of birth, or an exact copy of the row before. Every value is made up; none is a real person.

Then, K times, each in a fresh subprocess:

* ``civicshare validate + profile``: DuckDB on ONE thread (``SET threads=1``) reads the CSV and builds
  the full quality report (:func:`civicshare.schemas.quality.profile`): completeness, validity with
  example rows, repeated identifiers, exact duplicate rows, consistency, the score;
* the baseline: frictionless 5 validating the same file with the same schema (the catalog's Table Schema
  export; ``Resource.validate``, what ``frictionless validate --schema`` runs), on the first M rows
  (default 100,000, since it is far slower), every error counted. Its rate is measured on M rows.

Both clocks start once the tools' modules are imported, and include reading the CSV.

Prints one table: median seconds, rows, rows per second, speed relative to frictionless (our rows/s over
its rows/s), peak memory (VmHWM of each child process), and the targets (>= 200,000 rows/s, >= 10x,
< 1024 MiB) as PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

RATE_TARGET = 200_000
RATIO_TARGET = 10.0
PEAK_TARGET_MIB = 1024
THREADS = 1
MEMORY_LIMIT = "900MB"
TODAY = date(2026, 1, 1)
FAULT_PERCENT = 3

_FIRST = ["Aisha", "Ben", "Chloe", "Dylan", "Eira", "Finn", "Grace", "Harry", "Isla", "Jack", "Kiran", "Leah",
          "Mohammed", "Niamh", "Oliver", "Priya", "Quinn", "Rhys", "Sofia", "Tom", "Uma", "Vikram", "Willow", "Zara"]
_LAST = ["Adams", "Begum", "Clarke", "Davies", "Evans", "Fraser", "Green", "Hughes", "Iqbal", "Jones", "Khan",
         "Lewis", "Morgan", "Nowak", "O'Brien", "Patel", "Roberts", "Smith", "Taylor", "Walker", "Wright", "Young"]
_STREETS = ["High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Victoria Road",
            "Green Lane", "Manor Way", "Queens Drive", "Orchard Close"]
_LOCALITIES = ["Northfield", "Southgate", "Eastville", "Westbury", "Old Town", "Riverside", "Hillcrest"]
_TOWNS = ["Ashford", "Barnstaple", "Carlisle", "Dorking", "Ely", "Frome", "Grantham", "Hexham", "Ilkley", "Kendal"]
_AREAS = ["AB", "BS", "CA", "DL", "EX", "GL", "HR", "LA", "NE", "SY", "TN", "YO"]
# NI prefixes HMRC issues (a sample) and the inward-code letters Royal Mail uses.
_NI_PREFIXES = ["AB", "CE", "JG", "KA", "LM", "NH", "PR", "SW", "TA", "WP", "YZ", "ZA"]
_INWARD = "ABDEFGHJLNPQRSTUWXYZ"
COLUMNS = ["first_name", "middle_names", "last_name", "date_of_birth", "ni_number", "nhs_number",
           "address_line_1", "address_line_2", "address_line_3", "town", "postcode", "uprn", "phone", "email"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], seed: str, salt: int) -> str:
    return f"{_sql_list(values)}[1 + (hash({seed}, {salt}) % {len(values)})::INTEGER]"


def generate(path: Path, rows: int) -> None:
    """Write the person CSV; every value is a function of its row number, so the file is the same each time."""
    import duckdb

    con = duckdb.connect(config={"threads": 2})
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE MACRO nhs_chk(b) AS (11 - list_sum(list_transform(range(9), "
                "k -> CAST(substr(b, k + 1, 1) AS INTEGER) * (10 - k))) % 11) % 11")
    con.execute("CREATE MACRO nhs_of(s) AS (WITH b AS (SELECT "
                "lpad(CAST(100000000 + hash(s, 1) % 899999998 AS VARCHAR), 9, '0') AS b1) "
                "SELECT CASE WHEN nhs_chk(b1) = 10 THEN CAST(CAST(b1 AS BIGINT) + 1 AS VARCHAR) "
                "|| CAST(nhs_chk(CAST(CAST(b1 AS BIGINT) + 1 AS VARCHAR)) AS VARCHAR) "
                "ELSE b1 || CAST(nhs_chk(b1) AS VARCHAR) END FROM b)")
    # A fault in about FAULT_PERCENT of rows: which one from the row's hash. Fault 9 copies the row before.
    fault = f"CASE WHEN hash(i, 99) % 100 < {FAULT_PERCENT} THEN CAST(hash(i, 98) % 10 AS INTEGER) ELSE -1 END"
    first, last = _pick(_FIRST, "s", 2), _pick(_LAST, "s", 3)
    select = f"""
        WITH r AS (SELECT i, f, CASE WHEN f = 9 AND i > 0 THEN i - 1 ELSE i END AS s
                   FROM (SELECT i, {fault} AS f FROM range({int(rows)}) t(i)))
        SELECT
          {first} AS first_name,
          CASE WHEN hash(s, 21) % 4 = 0 THEN {_pick(_FIRST, "s", 22)} END AS middle_names,
          CASE WHEN f = 6 THEN NULL ELSE {last} END AS last_name,
          CASE WHEN f = 3 THEN (CASE WHEN i % 2 = 0 THEN '2091-05-01' ELSE '1980-02-30' END)
               WHEN f = 7 THEN strftime(DATE '1925-06-01' + CAST(hash(i - 1, 5) % 34000 AS INTEGER) + 1, '%Y-%m-%d')
               ELSE strftime(DATE '1925-06-01' + CAST(hash(s, 5) % 34000 AS INTEGER), '%Y-%m-%d') END AS date_of_birth,
          CASE WHEN f = 1 THEN 'QQ' ELSE {_pick(_NI_PREFIXES, "s", 6)} END
            || lpad(CAST(hash(s, 7) % 1000000 AS VARCHAR), 6, '0') || chr(65 + CAST(hash(s, 8) % 4 AS INTEGER))
            AS ni_number,
          CASE WHEN f = 0 THEN substr(nhs_of(s), 1, 9) || CAST((CAST(substr(nhs_of(s), 10, 1) AS INTEGER) + 1) % 10
                                                                AS VARCHAR)
               WHEN f = 7 THEN nhs_of(i - 1)
               ELSE nhs_of(s) END AS nhs_number,
          CAST(1 + hash(s, 9) % 250 AS VARCHAR) || ' ' || {_pick(_STREETS, "s", 10)} AS address_line_1,
          {_pick(_LOCALITIES, "s", 11)} AS address_line_2,
          NULL AS address_line_3,
          {_pick(_TOWNS, "s", 12)} AS town,
          CASE WHEN f = 2 THEN lower({_pick(_AREAS, "s", 13)}) || '1' || CAST(hash(s, 15) % 10 AS VARCHAR) || 'xx'
               ELSE {_pick(_AREAS, "s", 13)} || CAST(1 + hash(s, 14) % 20 AS VARCHAR) || ' '
                    || CAST(hash(s, 15) % 10 AS VARCHAR)
                    || substr('{_INWARD}', CAST(1 + hash(s, 16) % 20 AS INTEGER), 1)
                    || substr('{_INWARD}', CAST(1 + hash(s, 17) % 20 AS INTEGER), 1) END AS postcode,
          CAST(1 + hash(s, 18) % 999999999999 AS VARCHAR) AS uprn,
          CASE WHEN f = 5 THEN '+44123' ELSE '+447' || lpad(CAST(hash(s, 19) % 1000000000 AS VARCHAR), 9, '0') END
            AS phone,
          lower(replace({first} || '.' || {last}, '''', '')) || CAST(hash(s, 20) % 100 AS VARCHAR)
            || CASE WHEN f = 4 THEN '.example.org' ELSE '@example.org' END AS email
        FROM r ORDER BY i
    """
    partial = path.with_name(path.name + ".partial")
    con.execute(f"COPY ({select}) TO '{partial}' (FORMAT csv, HEADER true)")
    con.close()
    os.replace(partial, path)


def person_schema():  # noqa: ANN201 - civicshare's Schema, imported in the child only
    from civicshare.schemas.catalog import SchemaCatalog

    return SchemaCatalog(None).get("person")


# --- child side ------------------------------------------------------------------------------


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_child(op: str, csv_in: Path, work: Path, rows: int) -> dict[str, object]:
    """One operation; its clock starts once the modules are imported (the same for both tools)."""
    if op == "generate":
        started = time.perf_counter()
        generate(csv_in, rows)
        return {"seconds": time.perf_counter() - started, "rows": rows}
    if op == "frictionless":
        from frictionless import Resource, Schema

        descriptor = json.loads((work / "person.schema.json").read_text(encoding="utf-8"))
        started = time.perf_counter()
        # frictionless reads only paths relative to a base path it trusts.
        resource = Resource(path=csv_in.name, basepath=str(csv_in.parent), schema=Schema.from_descriptor(descriptor))
        checked = resource.validate(limit_errors=10**9, limit_rows=rows)
        seconds = time.perf_counter() - started
        task = checked.tasks[0]
        return {"seconds": seconds, "rows": int(task.stats.get("rows") or 0), "peak_mib": _peak_mib(),
                "errors": len(task.errors), "bad_rows": len({getattr(e, "row_number", None) for e in task.errors})}
    if op == "civicshare":
        from civicshare.holdings import duck
        from civicshare.schemas.quality import profile

        started = time.perf_counter()
        schema = person_schema()
        with duck.connection(threads=THREADS, memory_limit=MEMORY_LIMIT) as con:
            types = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS) + "}"
            source = (f"read_csv('{csv_in}', header=true, auto_detect=false, columns={types}, delim=',', "
                      "quote='\"', escape='\"')")
            # One statement: the file is parsed once and its rows held in memory for every pass.
            report = profile(con, source, COLUMNS, schema, today=TODAY, materialise=True)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "rows": report.rows, "peak_mib": _peak_mib(), "score": report.score,
                "invalid_rows": report.invalid_rows}
    raise SystemExit(f"unknown operation {op}")


# --- parent side -----------------------------------------------------------------------------


def _child(op: str, csv_in: Path, work: Path, rows: int, python: str = sys.executable) -> dict[str, object]:
    proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [python, __file__, "--child", op, "--csv", str(csv_in), "--work-dir", str(work), "--rows", str(rows)],
        stdout=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"operation {op} failed (exit {proc.returncode})")
    return dict(json.loads(proc.stdout))


def _frictionless_python() -> str:
    """The Python that has frictionless: ours (the `bench` extra), or FRICTIONLESS_PYTHON."""
    python = os.environ.get("FRICTIONLESS_PYTHON", sys.executable)
    found = subprocess.run([python, "-c", "import frictionless"], capture_output=True, check=False)  # noqa: S603
    if found.returncode != 0:
        raise SystemExit("frictionless is not installed: run `make bench` (it installs the `bench` extra), "
                         "or .venv/bin/pip install -e '.[bench]'")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000", help="rows to generate, or 'small' (20,000) for a quick look")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frictionless-rows", type=int, default=100_000)
    parser.add_argument("--work-dir", type=Path, default=None, help="where to cache the generated file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = 20_000 if args.rows == "small" else int(args.rows)

    if args.child:
        print(json.dumps(run_child(args.child, args.csv, args.work_dir, rows)))
        return

    cache = (args.work_dir or Path(tempfile.gettempdir())) / "civicshare-bench-quality"
    cache.mkdir(parents=True, exist_ok=True)
    csv_in = cache / f"person-{rows}.csv"
    if not csv_in.exists():
        took = _child("generate", csv_in, cache, rows)["seconds"]
        print(f"generated {rows:,} synthetic people in {took:.1f} s (cached as {csv_in})")
    python = _frictionless_python()
    work = Path(tempfile.mkdtemp(prefix="civicshare-bench-", dir=args.work_dir))
    try:
        schema_path = work / "person.schema.json"
        schema_path.write_text(json.dumps(_table_schema()), encoding="utf-8")
        fl_rows = min(rows, args.frictionless_rows)
        size_mb = csv_in.stat().st_size / 1e6
        print(f"{rows:,} people, {size_mb:,.1f} MB of CSV, about {FAULT_PERCENT}% of rows with a fault; {args.runs} "
              f"runs, each in a fresh process; civicshare on DuckDB threads={THREADS}; frictionless on the "
              f"first {fl_rows:,} rows; load average {os.getloadavg()[0]:.2f} at the start")
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(_child("civicshare", csv_in, work, rows))
            theirs.append(_child("frictionless", csv_in, work, fl_rows, python))
        passed = report(ours, theirs, rows, fl_rows)
        print(f"civicshare found {ours[0]['invalid_rows']:,} rows with a problem (score {ours[0]['score']}); "
              f"frictionless found {theirs[0]['errors']:,} errors in {theirs[0]['bad_rows']:,} of its {fl_rows:,} rows "
              "(it has no NHS check digit or age rule); "
              f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not passed:
        sys.exit(1)


def _table_schema() -> dict[str, object]:
    return dict(person_schema().to_table_schema())


def report(ours: list[dict[str, object]], theirs: list[dict[str, object]], rows: int, fl_rows: int) -> bool:
    def med(runs: list[dict[str, object]], key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

    for r in ours:
        if r["rows"] != rows:
            raise SystemExit(f"civicshare reported {r['rows']} rows, expected {rows}")
    our_s, their_s = med(ours, "seconds"), med(theirs, "seconds")
    our_rate, their_rate = rows / our_s, fl_rows / their_s
    ratio = our_rate / their_rate
    our_peak = max(float(r["peak_mib"]) for r in ours)  # type: ignore[arg-type]
    their_peak = max(float(r["peak_mib"]) for r in theirs)  # type: ignore[arg-type]
    header = (f"{'operation':<36} {'median s':>9} {'rows':>10} {'rows/s':>10} {'ratio':>6} {'peak MiB':>9}  "
              f"targets (>= {RATE_TARGET:,} rows/s, ratio >= {RATIO_TARGET:g}, peak < {PEAK_TARGET_MIB} MiB)")
    print(header)
    print("-" * len(header))
    print(f"{'frictionless validate (baseline)':<36} {their_s:>9.3f} {fl_rows:>10,} {their_rate:>10,.0f} "
          f"{'1.00':>6} {their_peak:>9.1f}  (baseline)")
    ok_rate, ok_ratio, ok_peak = our_rate >= RATE_TARGET, ratio >= RATIO_TARGET, our_peak < PEAK_TARGET_MIB
    verdict = (f"rate {'PASS' if ok_rate else 'FAIL'}, ratio {'PASS' if ok_ratio else 'FAIL'}, "
               f"peak {'PASS' if ok_peak else 'FAIL'}")
    print(f"{'civicshare validate + profile':<36} {our_s:>9.3f} {rows:>10,} {our_rate:>10,.0f} {ratio:>6.1f} "
          f"{our_peak:>9.1f}  {verdict}")
    passed = ok_rate and ok_ratio and ok_peak
    print(f"overall: {'PASS' if passed else 'FAIL'}")
    return passed


if __name__ == "__main__":
    main()
