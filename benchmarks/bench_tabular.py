"""Benchmark the tabular engine against plain DuckDB, measured in the same run.

    python benchmarks/bench_tabular.py [--rows N] [--runs K] [--work-dir DIR]

Generates a synthetic resident CSV (about 150 bytes a row; every value is made up from small word
lists, never a real person), then, K times, each in a fresh subprocess so that the peak RSS is that
of one operation:

* ``import (encrypted)``: :func:`import_table`, CSV to encrypted Parquet;
* ``export CSV (decrypt)``: :func:`export_table`, encrypted Parquet to CSV (formula-neutralised);
* the baselines: DuckDB reading the CSV into plain Parquet, and DuckDB writing plain Parquet to CSV,
  with the same thread count and memory limit.

Prints one table: median seconds, rows per second, speed relative to the DuckDB baseline (baseline
seconds / our seconds), peak RSS, and the targets (ratio >= 0.5, peak < 1024 MiB) as PASS/FAIL.
The generated files are deleted at the end.
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
from pathlib import Path

RATIO_TARGET = 0.5
PEAK_TARGET_MIB = 1024
THREADS = 2
MEMORY_LIMIT = "512MB"

# name, label, baseline name (None for a baseline itself)
OPERATIONS = [
    ("duckdb_import", "DuckDB CSV -> plain Parquet", None),
    ("import", "import (encrypted Parquet)", "duckdb_import"),
    ("duckdb_export", "DuckDB plain Parquet -> CSV", None),
    ("export", "export CSV (decrypt)", "duckdb_export"),
]

_TITLES = ["Mr", "Mrs", "Ms", "Miss", "Dr", "Mx"]
_FIRST = [
    "Aisha",
    "Ben",
    "Chloe",
    "Dylan",
    "Eira",
    "Finn",
    "Grace",
    "Harry",
    "Isla",
    "Jack",
    "Kiran",
    "Leah",
    "Mohammed",
    "Niamh",
    "Oliver",
    "Priya",
    "Quinn",
    "Rhys",
    "Sofia",
    "Tom",
    "Uma",
    "Vikram",
    "Willow",
    "Yusuf",
    "Zara",
]
_LAST = [
    "Adams",
    "Begum",
    "Clarke",
    "Davies",
    "Evans",
    "Fraser",
    "Green",
    "Hughes",
    "Iqbal",
    "Jones",
    "Khan",
    "Lewis",
    "Morgan",
    "Nowak",
    "O'Brien",
    "Patel",
    "Roberts",
    "Smith",
    "Taylor",
    "Walker",
    "Williams",
    "Wright",
    "Young",
]
_STREETS = [
    "High Street",
    "Station Road",
    "Church Lane",
    "Mill Road",
    "Park Avenue",
    "Victoria Road",
    "Green Lane",
    "Manor Way",
    "Queens Drive",
    "Orchard Close",
]
_TOWNS = [
    "Ashford",
    "Barnstaple",
    "Carlisle",
    "Dorking",
    "Ely",
    "Frome",
    "Grantham",
    "Hexham",
    "Ilkley",
    "Kendal",
    "Ludlow",
    "Malton",
]
_LOCALITIES = [
    "Northfield",
    "Southgate",
    "Eastville",
    "Westbury",
    "Old Town",
    "Riverside",
    "Hillcrest",
    "Meadowbank",
    "Kingsmead",
    "Abbey Ward",
    "Castle Ward",
    "Brookside",
]
_AREAS = ["AB", "BS", "CA", "DL", "EX", "GL", "HR", "LA", "NE", "SY", "TN", "YO"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], salt: int) -> str:
    return f"{_sql_list(values)}[1 + (hash(i, {salt}) % {len(values)})::INTEGER]"


def generate(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect(config={"threads": THREADS})
    con.execute("SET enable_progress_bar = false")
    first, last = _pick(_FIRST, 2), _pick(_LAST, 3)
    select = f"""
        SELECT
          'R' || lpad(i::VARCHAR, 9, '0') AS resident_id,
          lpad((hash(i, 1) % 10000000000)::VARCHAR, 10, '0') AS nhs_number,
          {_pick(_TITLES, 4)} AS title,
          {first} AS first_name,
          {last} AS last_name,
          strftime(DATE '1925-01-01' + (hash(i, 5) % 35000)::INTEGER, '%Y-%m-%d') AS date_of_birth,
          CASE WHEN hash(i, 6) % 5 = 0 THEN 'Flat ' || (1 + hash(i, 7) % 20)::VARCHAR || ', ' ELSE '' END
            || (1 + hash(i, 8) % 250)::VARCHAR || ' ' || {_pick(_STREETS, 9)} AS address_line_1,
          {_pick(_LOCALITIES, 19)} AS address_line_2,
          {_pick(_TOWNS, 10)} AS town,
          {_pick(_AREAS, 11)} || (1 + hash(i, 12) % 20)::VARCHAR || ' ' || (hash(i, 13) % 10)::VARCHAR
            || chr(65 + (hash(i, 14) % 26)::INTEGER) || chr(65 + (hash(i, 15) % 26)::INTEGER) AS postcode,
          '07' || lpad((hash(i, 16) % 1000000000)::VARCHAR, 9, '0') AS phone,
          lower(replace({first} || '.' || {last}, '''', '')) || (hash(i, 17) % 100)::VARCHAR
            || '@example.org' AS email,
          chr(65 + (hash(i, 18) % 8)::INTEGER) AS council_tax_band,
          lpad((hash(i, 20) % 1000000000000)::VARCHAR, 12, '0') AS uprn
        FROM range({int(rows)}) t(i)
        ORDER BY i
    """
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT csv, HEADER true)")
    con.close()


# --- child side ------------------------------------------------------------------------------


def _duckdb_plain():
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {THREADS}")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET temp_directory = ''")
    con.execute("SET enable_progress_bar = false")
    return con


def run_child(op: str, work: Path, rows_wanted: int) -> dict[str, float]:
    csv_in = work / "residents.csv"
    key = bytes.fromhex(os.environ.get("BENCH_KEY", "00" * 32))
    started = time.perf_counter()
    if op == "generate":
        generate(csv_in, rows_wanted)
        rows = rows_wanted
    elif op == "import":
        from civicshare.holdings.tabular import import_table

        rows = import_table(csv_in, work / "residents.enc.parquet", key).rows
    elif op == "export":
        from civicshare.holdings.tabular import export_table

        rows = export_table(work / "residents.enc.parquet", key, work / "export.csv", "csv", overwrite=True)
    elif op == "duckdb_import":
        con = _duckdb_plain()
        rows = con.execute(
            f"COPY (SELECT * FROM read_csv('{csv_in}', all_varchar=true, header=true)) "
            f"TO '{work / 'residents.plain.parquet'}' (FORMAT parquet)"
        ).fetchone()[0]
        con.close()
    elif op == "duckdb_export":
        con = _duckdb_plain()
        rows = con.execute(
            f"COPY (SELECT * FROM read_parquet('{work / 'residents.plain.parquet'}')) "
            f"TO '{work / 'baseline.csv'}' (FORMAT csv, HEADER true)"
        ).fetchone()[0]
        con.close()
    else:
        raise SystemExit(f"unknown operation {op}")
    return {"seconds": time.perf_counter() - started, "rows": rows}


# --- parent side -----------------------------------------------------------------------------


def measure(op: str, work: Path, key: bytes, rows: int = 0) -> tuple[float, int, float]:
    """(seconds, rows, peak MiB) of one operation in a fresh subprocess.

    The parent stays small (it never loads DuckDB): on Linux a child's ru_maxrss can include the
    resident size of the process it was forked from.
    """
    env = dict(os.environ, BENCH_KEY=key.hex())
    proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, __file__, "--child", op, "--work-dir", str(work), "--rows", str(rows)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"operation {op} failed (exit {proc.returncode})")
    result = json.loads(out)
    peak_mib = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return float(result["seconds"]), int(result["rows"]), peak_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=None, help="where to put the generated files")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_child(args.child, args.work_dir, args.rows)))
        return

    work = Path(tempfile.mkdtemp(prefix="civicshare-bench-", dir=args.work_dir))
    try:
        key = os.urandom(32)
        seconds, _, _ = measure("generate", work, key, args.rows)
        size_mb = (work / "residents.csv").stat().st_size / 1e6
        print(
            f"generated {args.rows:,} synthetic residents, {size_mb:,.1f} MB of CSV, in {seconds:.1f} s; "
            f"{args.runs} runs, each operation in a fresh process "
            f"(DuckDB threads={THREADS}, memory_limit={MEMORY_LIMIT})"
        )
        results: dict[str, list[tuple[float, int, float]]] = {op: [] for op, _, _ in OPERATIONS}
        for _ in range(args.runs):
            for op, _, _ in OPERATIONS:
                results[op].append(measure(op, work, key))
        passed = report(results, args.rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not passed:
        sys.exit(1)


def report(results: dict[str, list[tuple[float, int, float]]], rows: int) -> bool:
    medians = {op: statistics.median(r[0] for r in runs) for op, runs in results.items()}
    header = (
        f"{'operation':<30} {'median s':>9} {'rows/s':>12} {'ratio':>6} {'peak MiB':>9}  "
        f"targets (ratio >= {RATIO_TARGET}, peak < {PEAK_TARGET_MIB} MiB)"
    )
    print(header)
    print("-" * len(header))
    all_pass = True
    for op, label, baseline in OPERATIONS:
        runs = results[op]
        seconds = medians[op]
        counted = {r[1] for r in runs}
        if counted != {rows}:
            raise SystemExit(f"{op} reported {counted} rows, expected {rows}")
        peak = max(r[2] for r in runs)
        if baseline is None:
            ratio_text, verdict = "1.00", "(baseline)"
        else:
            ratio = medians[baseline] / seconds
            ok = ratio >= RATIO_TARGET and peak < PEAK_TARGET_MIB
            all_pass = all_pass and ok
            ratio_text = f"{ratio:.2f}"
            verdict = (
                f"ratio {'PASS' if ratio >= RATIO_TARGET else 'FAIL'}, "
                f"peak {'PASS' if peak < PEAK_TARGET_MIB else 'FAIL'}"
            )
        print(f"{label:<30} {seconds:>9.3f} {rows / seconds:>12,.0f} {ratio_text:>6} {peak:>9.1f}  {verdict}")
    print(f"overall: {'PASS' if all_pass else 'FAIL'}")
    return all_pass


if __name__ == "__main__":
    main()
