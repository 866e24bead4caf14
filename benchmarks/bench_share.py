"""Benchmark a share between two nodes on loopback against age + curl, measured in the same run.

    python benchmarks/bench_share.py [--mb N] [--runs K] [--work-dir DIR]

Generates N MiB of random bytes once (default 1024, or ``CIVICSHARE_BENCH_SHARE_MB``), then, K times
each:

* ``baseline``: ``age -e -r RECIPIENT`` encrypts the file, ``curl -T`` uploads it to a plain HTTP sink
  on the node's own server stack (benchmarks/sink.py: FastAPI + uvicorn, the body streamed to a file),
  and ``age -d -i IDENTITY`` decrypts it; the decrypted copy is checked by sha256 (untimed);
* ``share``: two real nodes (``civicshare serve``, each its own process, SQLite homes); the file is
  imported at the sender and the two sign a data sharing agreement for it once (untimed), then
  ``civicshare share HOLDING --to ORG --agreement AID --wait`` runs end to end until the transfer is
  delivered (receipt verified); the recipient's copy is exported and checked by sha256 (untimed).

Prints one table: median seconds, throughput in MB/s, the ratio node/baseline (target >= 0.75), and the
peak RSS (VmHWM) of each process (target < 300 MiB for each node), as PASS/FAIL. Exits 1 if a
target fails. Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

# The node helpers live with the tests; the benchmark drives nodes exactly as they do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.nodes import NodeHome, agree, exchange_cards, free_port, random_file, sha256_file  # noqa: E402

RATIO_TARGET = 0.75
PEAK_TARGET_MIB = 300
AGE = shutil.which("age") or "/usr/bin/age"
AGE_KEYGEN = shutil.which("age-keygen") or "/usr/bin/age-keygen"
CURL = shutil.which("curl") or "/usr/bin/curl"
SENDER, RECIPIENT = "bench-north", "bench-south"
# What ``import --document`` records for the generated .bin file; the agreement allows exactly that.
MEDIA_TYPE = "application/octet-stream"


@dataclass
class Runs:
    seconds: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)

    def add_part(self, name: str, seconds: float) -> None:
        self.parts.setdefault(name, []).append(seconds)


def _run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the baseline: age + curl + a plain sink ----------------------------------------------------------


def baseline(source: Path, work: Path, runs: int, expected: str) -> tuple[Runs, float]:
    """K runs of encrypt, upload, decrypt; and the sink's peak RSS."""
    identity = work / "baseline.key"
    subprocess.run([AGE_KEYGEN, "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run([AGE_KEYGEN, "-y", str(identity)], check=True, capture_output=True,
                               text=True).stdout.strip()
    sink_dir = work / "sink"
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(Path(__file__).with_name("sink.py")), "--port", str(port),
                             "--dir", str(sink_dir)], stdin=subprocess.DEVNULL, start_new_session=True)
    result = Runs()
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", sink)
        for i in range(runs):
            encrypted, decrypted = work / "baseline.age", work / "baseline.out"
            received = sink_dir / f"run{i}.age"
            encrypt = _run([AGE, "-e", "-r", recipient, "-o", str(encrypted), str(source)])
            # "Expect:" turns off curl's 100-continue pause, which would only measure a timer.
            upload = _run([CURL, "-sS", "--fail", "-o", "/dev/null", "-H", "Expect:", "-T", str(encrypted),
                           f"http://127.0.0.1:{port}/upload/{received.name}"])
            decrypt = _run([AGE, "-d", "-i", str(identity), "-o", str(decrypted), str(received)])
            if sha256_file(decrypted) != expected:
                raise SystemExit("baseline: the decrypted copy differs from the source")
            for path in (encrypted, decrypted, received):
                path.unlink()
            result.seconds.append(encrypt + upload + decrypt)
            for name, seconds in (("age -e", encrypt), ("curl upload", upload), ("age -d", decrypt)):
                result.add_part(name, seconds)
        peak = _peak_mib(sink.pid)
    finally:
        os.killpg(sink.pid, signal.SIGTERM)
        sink.wait(15)
    return result, peak


def _wait_healthy(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"the server at {base_url} did not start")


# --- the node: civicshare share --wait ---------------------------------------------------------------


def serve_options() -> list[str]:
    """Fast delivery polling, if this build of `serve` has the option."""
    help_text = subprocess.run([sys.executable, "-m", "civicshare", "serve", "--help"], capture_output=True,
                               text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    return ["--deliver-every", "0.2"] if "--deliver-every" in help_text else []


def transfer_id(answer: dict) -> str:
    for key in ("transfer", "id", "transfer_id"):
        value = answer.get(key)
        if isinstance(value, str) and value.startswith("t_"):
            return value
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return str(value["id"])
    raise SystemExit(f"cannot find the transfer id in the answer of share --json: {answer}")


def delivered_holding(recipient: NodeHome, transfer: str) -> str:
    """The recipient's holding id for this transfer, from its inbox; exactly one must exist."""
    matches = [item for item in recipient.inbox() if transfer in (item.get("transfer"), item.get("id"))]
    if len(matches) != 1:
        raise SystemExit(f"the recipient's inbox holds {len(matches)} entries for {transfer}: {matches}")
    holding = matches[0].get("holding")
    if isinstance(holding, dict):
        holding = holding.get("id")
    if not isinstance(holding, str):
        raise SystemExit(f"no holding id in the inbox entry {matches[0]}")
    return holding


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def node_share(source: Path, work: Path, runs: int, expected: str) -> tuple[Runs, float, float]:
    """K shares of one imported document; and the peak RSS of the sending and the receiving node."""
    north = NodeHome.create(work / "north", SENDER, "Bench North")
    south = NodeHome.create(work / "south", RECIPIENT, "Bench South")
    try:
        exchange_cards(north, south)
        holding = north.import_document(source)["id"]
        options = serve_options()
        north.start(*options)
        south.start(*options)
        agreement = agree(north, south, documents=True, media_types=[MEDIA_TYPE])
        result = Runs()
        for i in range(runs):
            wall = datetime.now(UTC)
            started = time.perf_counter()
            answer = north.share(holding, RECIPIENT, agreement=agreement, wait=True, timeout=1800)
            seconds = time.perf_counter() - started
            transfer = transfer_id(answer)
            # The ledger's timestamps (whole seconds) split the time: sealing in the share command
            # until the transfer is queued, then delivery until the receipt verified.
            queued, delivered = _when(answer["created"]), _when(answer["delivered"])
            result.add_part("sealing (share, until queued)", (queued - wall).total_seconds())
            result.add_part("delivery (until receipt verified)", (delivered - queued).total_seconds())
            state = north.transfer(transfer).get("state")
            if state != "delivered":
                raise SystemExit(f"share --wait returned but {transfer} is {state!r}")
            copy = south.export(delivered_holding(south, transfer), work / f"received{i}.bin")
            if sha256_file(copy) != expected:
                raise SystemExit(f"share: the recipient's copy of {transfer} differs from the source")
            copy.unlink()
            result.seconds.append(seconds)
        return result, north.peak_rss_mib(), south.peak_rss_mib()
    finally:
        north.stop()
        south.stop()


# --- the report ---------------------------------------------------------------------------------------


def report(size: int, base: Runs, sink_peak: float, node: Runs, north_peak: float, south_peak: float) -> bool:
    mb = size / 1e6
    base_s, node_s = statistics.median(base.seconds), statistics.median(node.seconds)
    ratio = base_s / node_s
    ratio_ok = ratio >= RATIO_TARGET
    peaks_ok = north_peak < PEAK_TARGET_MIB and south_peak < PEAK_TARGET_MIB
    header = (f"{'path':<44} {'median s':>9} {'MB/s':>8} {'ratio':>6} {'peak MiB':>16}  "
              f"targets (ratio >= {RATIO_TARGET}, peak < {PEAK_TARGET_MIB} MiB per node)")
    print(header)
    print("-" * len(header))
    print(f"{'baseline: age -e + curl -T to sink + age -d':<44} {base_s:>9.2f} {mb / base_s:>8.1f} {'1.00':>6} "
          f"{f'sink {sink_peak:.0f}':>16}  (baseline)")
    for name, samples in base.parts.items():
        part = statistics.median(samples)
        print(f"{'  of which ' + name:<44} {part:>9.2f} {mb / part:>8.1f}")
    peaks = f"{north_peak:.0f} / {south_peak:.0f}"
    print(f"{'civicshare share --wait (sender / recipient)':<44} {node_s:>9.2f} {mb / node_s:>8.1f} {ratio:>6.2f} "
          f"{peaks:>16}  ratio {'PASS' if ratio_ok else 'FAIL'}, peak {'PASS' if peaks_ok else 'FAIL'}")
    for name, samples in node.parts.items():
        part = statistics.median(samples)
        print(f"{'  of which ' + name:<44} {part:>9.0f} {mb / max(part, 1):>8.1f}   (ledger times, whole seconds)")
    print(f"overall: {'PASS' if ratio_ok and peaks_ok else 'FAIL'}")
    return ratio_ok and peaks_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=int(os.environ.get("CIVICSHARE_BENCH_SHARE_MB", "1024")),
                        help="size of the shared document in MiB (or set CIVICSHARE_BENCH_SHARE_MB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=None, help="where to put the generated files")
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="civicshare-bench-share-", dir=args.work_dir))
    try:
        size = args.mb << 20
        started = time.perf_counter()
        source = random_file(work / "document.bin", size)
        expected = sha256_file(source)
        print(f"generated {args.mb} MiB of random bytes in {time.perf_counter() - started:.1f} s; {args.runs} runs "
              f"of each path on loopback, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        base, sink_peak = baseline(source, work, args.runs, expected)
        if args.baseline_only:
            mb = size / 1e6
            for name, samples in {"baseline": base.seconds, **base.parts}.items():
                median = statistics.median(samples)
                print(f"{name:<14} median {median:.2f} s, {mb / median:.1f} MB/s")
            print(f"sink peak RSS {sink_peak:.0f} MiB")
            return
        node, north_peak, south_peak = node_share(source, work, args.runs, expected)
        passed = report(size, base, sink_peak, node, north_peak, south_peak)
        print(f"load average at the end {os.getloadavg()[0]:.1f} (other work on this machine slows both paths)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
