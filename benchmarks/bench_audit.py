"""Benchmark the audit log: append throughput, proofs on a large log, and its share of real work.

    python benchmarks/bench_audit.py [--runs K] [--appends N] [--proof-size N]

Measures, in one run, on SQLite (a node home in a temporary folder) and on PostgreSQL (a fresh schema
of the database at ``CIVICSHARE_TEST_PG``, dropped afterwards; skipped with a visible line if it cannot
be reached):

1. ``appends/s``: N appends through ``node.audit.append``, one writer, each append its own transaction
   as in real use, on a fresh node per run; the median of K runs, beside the published figures for
   Trillian and Tessera. Target: >= 5,000 appends/s on SQLite.
2. ``proofs``: a log of ``--proof-size`` entries (default 1,000,000) is written straight into
   audit_entries / audit_nodes / audit_heads, row for row what ``AuditLog.append`` would write, in large
   transactions; its root is checked against ``merkle.root_from_leaves``. Then 1,000 inclusion proofs
   and 1,000 consistency proofs for random indices and old sizes are timed (warm) and each is verified
   outside the timed part. Target: median inclusion proof < 1 ms on SQLite.
3. ``share``: import and export of a 10,000-row synthetic dataset, timing the calls to
   ``node.audit.append`` made during it; the median share of K runs. Target: < 5%.

Prints one table per part and an overall PASS/FAIL; exits 1 if a target fails. Everything it creates
(node homes, files, schemas) is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from base64 import b64decode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.exc import OperationalError

from civicshare.access import Actor, Role
from civicshare.audit.entry import OK, AuditEntry
from civicshare.audit.merkle import leaf_hash, root_from_leaves, verify_consistency, verify_inclusion
from civicshare.crypto import KdfParams
from civicshare.db import tables as t
from civicshare.node import Node
from civicshare.synthetic import residents_csv

PG_URL = os.environ.get("CIVICSHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSPHRASE = "bench passphrase, not a secret"
ORG = "bench-council"

APPENDS_TARGET = 5_000  # appends/s on SQLite
PROOF_TARGET_MS = 1.0  # median inclusion proof on SQLite
SHARE_TARGET = 0.05  # audit share of import + export
PROOFS = 1_000
DATASET_ROWS = 10_000
BUILD_BATCH = 100_000  # entries per transaction when building the large log
WARMUP = 20  # untimed proofs before the timed ones

# Published figures, measured elsewhere on other hardware: context, not a like-for-like baseline.
TRILLIAN = 1_190  # entries/s, Trillian on a laptop
TESSERA = (1_600, 2_000)  # writes/s, Tessera on a small cloud VM

BACKENDS = ("SQLite", "PostgreSQL")


# --- backends --------------------------------------------------------------------------------------


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def postgres_description() -> str:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            fsync = conn.execute(text("SHOW fsync")).scalar_one()
    finally:
        engine.dispose()
    safe = make_url(PG_URL).render_as_string(hide_password=True)
    return f"PostgreSQL {version} at {safe} (synchronous_commit={sync}, fsync={fsync})"


@contextmanager
def fresh_node(backend: str, work: Path) -> Iterator[Node]:
    """A new node home hosting ORG, on a new SQLite file or a new PostgreSQL schema; all removed after."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=work))
    shutil.rmtree(home)  # Node.init wants a folder that does not exist yet (or is empty)
    schema = None
    db_url = None
    if backend == "PostgreSQL":
        schema = "bench_" + secrets.token_hex(6)
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        db_url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    node = None
    try:
        node = Node.init(
            home, ORG, "Bench Council", db_url=db_url, passphrase=PASSPHRASE, kdf=KdfParams.fast_for_tests()
        )
        yield node
    finally:
        if node is not None:
            node.close()
        shutil.rmtree(home, ignore_errors=True)
        if schema is not None:
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def median_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- 1. appends per second ---------------------------------------------------------------------------


def appends_per_second(backend: str, work: Path, appends: int) -> float:
    with fresh_node(backend, work) as node:
        append = node.audit.append
        started = time.perf_counter()
        for i in range(appends):
            append(ORG, "bench-caseworker", "holding.view", f"h_{i:016x}", details={"rows_shown": 20})
        seconds = time.perf_counter() - started
        size = node.audit.head(ORG)[1]
    if size < appends:
        raise SystemExit(f"{backend}: the log has {size} entries after {appends} appends")
    return appends / seconds


def part_appends(backends: list[str], work: Path, runs: int, appends: int) -> bool:
    results = {b: [appends_per_second(b, work, appends) for _ in range(runs)] for b in backends}
    print(
        f"\n1. Appends per second, one writer, one transaction per append "
        f"({appends:,} appends per run, median of {runs} runs)"
    )
    header = (
        f"{'log':<36} {'appends/s':>10} {'min..max':>15} {'vs Trillian':>12} {'vs Tessera':>12}  "
        f"target (SQLite >= {APPENDS_TARGET:,}/s)"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for backend in BACKENDS:
        if backend not in results:
            print(f"{'civicshare, ' + backend:<36} skipped: PostgreSQL is not reachable")
            continue
        rates = results[backend]
        rate = statistics.median(rates)
        spread = f"{min(rates):,.0f}..{max(rates):,.0f}"
        tessera = f"{rate / TESSERA[1]:.2f}-{rate / TESSERA[0]:.2f}x"
        if backend == "SQLite":
            passed = rate >= APPENDS_TARGET
            ok = ok and passed
            note = verdict(passed)
        else:
            note = "(information)"
        print(
            f"{'civicshare, ' + backend:<36} {rate:>10,.0f} {spread:>15} {rate / TRILLIAN:>11.2f}x "
            f"{tessera:>12}  {note}"
        )
    print(f"{'Trillian (published, a laptop)':<36} {TRILLIAN:>10,} {'':>15} {'1.00x':>12} {'':>12}  (baseline)")
    print(
        f"{'Tessera (published, small cloud VM)':<36} {f'{TESSERA[0]:,}-{TESSERA[1]:,}':>10} {'':>15} "
        f"{'':>12} {'1.00x':>12}  (baseline)"
    )
    print("   (the published figures come from other machines and setups; ratios are ours / theirs)")
    return ok


# --- 2. proofs on a large log ------------------------------------------------------------------------


def build_log(node: Node, size: int) -> list[bytes]:
    """Grow ORG's log to ``size`` entries by writing its rows directly, as AuditLog.append would.

    Returns the leaf hashes of all entries, recomputed from the entry bytes.
    """
    engine = node.audit.engine
    sql = node.audit._sql  # the very statements and value processors AuditLog.append uses
    binary, as_time = sql.binary, sql.time
    _origin, start, frontier = node.audit.head(ORG)
    with engine.connect() as conn:
        existing = (
            conn.execute(
                select(t.audit_entries.c.entry).where(t.audit_entries.c.org_id == ORG).order_by(t.audit_entries.c.idx)
            )
            .scalars()
            .all()
        )
    leaves = [leaf_hash(bytes(data)) for data in existing]
    if len(leaves) != start:
        raise SystemExit(f"the log's head says {start} entries but {len(leaves)} are stored")
    if start >= size:
        return leaves
    set_head = (
        "UPDATE audit_heads SET size = :size, frontier = :frontier WHERE org_id = :org"
        if engine.dialect.name == "sqlite"
        else "UPDATE audit_heads SET size = %(size)s, frontier = %(frontier)s WHERE org_id = %(org)s"
    )
    actors = [f"user-{n:02d}" for n in range(40)]
    actions = ["holding.view", "holding.view", "holding.export", "key.unwrap", "holding.import", "login"]
    base = datetime.now(UTC) - timedelta(days=365)
    for first in range(start, size, BUILD_BATCH):
        entries: list[dict[str, Any]] = []
        nodes: list[dict[str, Any]] = []
        for index in range(first, min(first + BUILD_BATCH, size)):
            actor, action = actors[index % len(actors)], actions[index % len(actions)]
            obj = f"h_{index % 5000:016x}"
            entry = AuditEntry(base + timedelta(seconds=index * 30), actor, ORG, action, obj, OK, {"n": index}, index)
            data = entry.canonical()
            leaf = leaf_hash(data)
            leaves.append(leaf)
            for level, idx, digest in [(0, index, leaf), *frontier.append(leaf)]:
                nodes.append({"org": ORG, "level": level, "idx": idx, "hash": binary(digest)})
            entries.append(
                {
                    "org": ORG,
                    "idx": index,
                    "entry": binary(data),
                    "root": binary(frontier.root()),
                    "time": as_time(entry.time),
                    "actor": actor,
                    "action": action,
                    "object": obj,
                    "outcome": OK,
                }
            )
        with engine.begin() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(sql.add_entry, entries)
                cursor.executemany(sql.add_node, nodes)
                cursor.execute(set_head, {"org": ORG, "size": frontier.size, "frontier": binary(frontier.to_bytes())})
            finally:
                cursor.close()
    if node.audit.engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE audit_entries"))
            conn.execute(text("ANALYZE audit_nodes"))
    return leaves


def stored_root_after(node: Node, size: int) -> bytes:
    with node.audit.engine.connect() as conn:
        return bytes(
            conn.execute(
                select(t.audit_entries.c.root_after).where(
                    t.audit_entries.c.org_id == ORG, t.audit_entries.c.idx == size - 1
                )
            ).scalar_one()
        )


def proofs_on(backend: str, work: Path, size: int) -> dict[str, Any]:
    rnd = random.Random(9162)  # noqa: S311 - repeatable choice of indices, nothing secret
    with fresh_node(backend, work) as node:
        started = time.perf_counter()
        leaves = build_log(node, size)
        build_seconds = time.perf_counter() - started

        # The built log must be the log AuditLog.append would have made.
        _origin, head_size, frontier = node.audit.head(ORG)
        root = frontier.root()
        if head_size != size or len(leaves) != size:
            raise SystemExit(f"{backend}: built {head_size} entries ({len(leaves)} leaves), wanted {size}")
        if root != root_from_leaves(leaves):
            raise SystemExit(f"{backend}: the head's root is not the Merkle root of the stored entries")
        if stored_root_after(node, size) != root:
            raise SystemExit(f"{backend}: the last entry's root_after is not the head's root")
        # One real append on top of the built log must carry on from it.
        index = node.audit.append(ORG, "bench", "holding.view", "h_check", details={"rows_shown": 20})
        if index != size:
            raise SystemExit(f"{backend}: an append on top of the built log got index {index}, not {size}")
        leaves.append(leaf_hash(_entry_bytes(node, index)))
        size += 1
        root = node.audit.head(ORG)[2].root()
        if root != root_from_leaves(leaves):
            raise SystemExit(f"{backend}: an append on top of the built log gives the wrong root")

        def timed(call: Callable[[int], dict[str, Any]], args: list[int]) -> tuple[list[float], list[dict]]:
            for arg in args[:WARMUP]:  # warm the caches and the connection pool
                call(arg)
            seconds, proofs = [], []
            for arg in args:
                started = time.perf_counter()
                proof = call(arg)
                seconds.append(time.perf_counter() - started)
                proofs.append(proof)
            return seconds, proofs

        indices = [rnd.randrange(size) for _ in range(PROOFS)]
        inc_seconds, inc_proofs = timed(lambda i: node.audit.inclusion(ORG, i), indices)
        for index, proof in zip(indices, inc_proofs, strict=True):
            leaf = b64decode(proof["leaf_hash"])
            if leaf != leaves[index] or leaf != leaf_hash(proof["entry"].encode("utf-8")):
                raise SystemExit(f"{backend}: the inclusion proof for {index} carries the wrong leaf")
            if b64decode(proof["root_hash"]) != root or proof["tree_size"] != size:
                raise SystemExit(f"{backend}: the inclusion proof for {index} is not for the current tree")
            verify_inclusion(leaf, index, size, [b64decode(h) for h in proof["hashes"]], root)

        old_sizes = [rnd.randrange(1, size + 1) for _ in range(PROOFS)]
        con_seconds, con_proofs = timed(lambda m: node.audit.consistency(ORG, m), old_sizes)
        for old, proof in zip(old_sizes, con_proofs, strict=True):
            old_root, new_root = b64decode(proof["from_root"]), b64decode(proof["to_root"])
            if new_root != root or old_root != stored_root_after(node, old):
                raise SystemExit(f"{backend}: the consistency proof from {old} has roots the log never had")
            verify_consistency(old, size, [b64decode(h) for h in proof["hashes"]], old_root, new_root)
    return {
        "size": size,
        "build": build_seconds,
        "inclusion": median_p95(inc_seconds),
        "consistency": median_p95(con_seconds),
    }


def _entry_bytes(node: Node, index: int) -> bytes:
    with node.audit.engine.connect() as conn:
        return bytes(
            conn.execute(
                select(t.audit_entries.c.entry).where(t.audit_entries.c.org_id == ORG, t.audit_entries.c.idx == index)
            ).scalar_one()
        )


def part_proofs(backends: list[str], work: Path, size: int) -> bool:
    results = {b: proofs_on(b, work, size) for b in backends}
    print(
        f"\n2. Proofs on a log of {size:,} entries ({PROOFS:,} random proofs each, warm; "
        f"every proof verified outside the timing)"
    )
    header = (
        f"{'log':<24} {'built in':>9} {'inclusion median':>17} {'p95':>12} "
        f"{'consistency median':>19} {'p95':>12}  target (SQLite inclusion median < {PROOF_TARGET_MS:g} ms)"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for backend in BACKENDS:
        if backend not in results:
            print(f"{'civicshare, ' + backend:<24} skipped: PostgreSQL is not reachable")
            continue
        r = results[backend]
        inc_med, inc_p95 = (s * 1000 for s in r["inclusion"])
        con_med, con_p95 = (s * 1000 for s in r["consistency"])
        if backend == "SQLite":
            passed = inc_med < PROOF_TARGET_MS
            ok = ok and passed
            note = verdict(passed)
        else:
            note = "(information)"
        print(
            f"{'civicshare, ' + backend:<24} {r['build']:>8.1f}s {inc_med:>14.3f} ms {inc_p95:>9.3f} ms "
            f"{con_med:>16.3f} ms {con_p95:>9.3f} ms  {note}"
        )
    print("   (tree size in the proofs is the built size plus one real append made on top of it)")
    return ok


# --- 3. the audit log's share of import + export -----------------------------------------------------


def share_on(backend: str, work: Path, runs: int, source: Path) -> list[tuple[float, float, int]]:
    """(total seconds, seconds inside audit.append, appends) per run of import + export."""
    results = []
    with fresh_node(backend, work) as node:
        actor = Actor(ORG, "bench", Role.ADMIN)
        real_append = node.audit.append
        spent = [0.0, 0]

        def timed_append(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return real_append(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
                spent[1] += 1

        node.audit.append = timed_append  # type: ignore[method-assign]  # this instance only, for the benchmark
        out = work / f"export-{backend}.csv"
        for run in range(runs + 1):  # the first run warms up and is not counted
            spent[0], spent[1] = 0.0, 0
            started = time.perf_counter()
            holding = node.import_dataset(actor, source, "residents")
            _, rows = node.export(actor, holding.id, out, "csv", overwrite=True)
            total = time.perf_counter() - started
            if rows != DATASET_ROWS:
                raise SystemExit(f"{backend}: exported {rows} rows, expected {DATASET_ROWS}")
            if run:
                results.append((total, spent[0], int(spent[1])))
        out.unlink(missing_ok=True)
    return results


def part_share(backends: list[str], work: Path, runs: int) -> bool:
    source = work / "residents.csv"
    source.write_bytes(residents_csv(DATASET_ROWS))
    results = {b: share_on(b, work, runs, source) for b in backends}
    source.unlink()
    print(
        f"\n3. The audit log's share of importing and exporting {DATASET_ROWS:,} synthetic residents "
        f"(median of {runs} runs)"
    )
    header = (
        f"{'log':<24} {'import+export':>14} {'in audit.append':>16} {'appends':>8} {'share':>7}  "
        f"target (SQLite share < {SHARE_TARGET:.0%})"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for backend in BACKENDS:
        if backend not in results:
            print(f"{'civicshare, ' + backend:<24} skipped: PostgreSQL is not reachable")
            continue
        runs_ = results[backend]
        total = statistics.median(r[0] for r in runs_)
        audit = statistics.median(r[1] for r in runs_)
        share = statistics.median(r[1] / r[0] for r in runs_)
        appends = statistics.median(r[2] for r in runs_)
        if backend == "SQLite":
            passed = share < SHARE_TARGET
            ok = ok and passed
            note = verdict(passed)
        else:
            note = "(information)"
        print(
            f"{'civicshare, ' + backend:<24} {total * 1000:>11.1f} ms {audit * 1000:>13.2f} ms {appends:>8.0f} "
            f"{share:>7.2%}  {note}"
        )
    return ok


# --- main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--appends", type=int, default=5_000)
    parser.add_argument("--proof-size", type=int, default=1_000_000)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # show each table as it is done
    # A terminated run still removes its node homes and schemas (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

    backends = ["SQLite"]
    print(
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL: commits are not fsynced), "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    reason = postgres_reachable()
    if reason is None:
        backends.append("PostgreSQL")
        print(postgres_description())
    else:
        print(f"PostgreSQL at {PG_URL} is NOT reachable ({reason}): its rows are skipped.")

    work = Path(tempfile.mkdtemp(prefix="civicshare-bench-audit-"))
    try:
        results = [
            part_appends(backends, work, args.runs, args.appends),
            part_proofs(backends, work, args.proof_size),
            part_share(backends, work, args.runs),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    passed = all(results)
    print(f"\noverall: {verdict(passed)}")
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
