"""Real civicshare nodes for black-box tests and benchmarks: homes made with the CLI, `serve` processes.

A :class:`NodeHome` is one node home hosting one organisation. Everything goes through the real
``civicshare`` command in subprocesses, as an operator would do it::

    north = NodeHome.create(tmp / "north", "north-wold", "North Wold", port=free_port())
    south = NodeHome.create(tmp / "south", "south-fen", "South Fen", url=proxy.url)  # card points at the proxy
    exchange_cards(north, south)
    north.start(); south.start(port=...); proxy.upstream = south.address
    holding = north.import_document(path)
    ...
    south.kill()      # SIGKILL, by the serve process's own pid (it leads its own process group)

Processes a NodeHome starts, it stops (``stop``/``kill``/``close``); fixtures call ``close`` in
their finalizers. Nothing here matches processes by name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSPHRASE = "fault and benchmark nodes, not a secret"


class NodeError(AssertionError):
    """A CLI command or a serve process did not do what the test needed."""


@dataclass
class CliResult:
    args: list[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def check(self) -> CliResult:
        if self.code != 0:
            raise NodeError(f"civicshare {' '.join(self.args)} exited {self.code}: {self.err.strip() or self.out}")
        return self


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int, seed: int | None = None) -> Path:
    """A file of ``size`` random bytes (from os.urandom, or a seeded generator), written in 8 MiB steps."""
    import random

    rng = random.Random(seed) if seed is not None else None
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(rng.randbytes(n) if rng is not None else os.urandom(n))
            left -= n
    return path


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll until ``condition()`` returns something truthy, and return it; NodeError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NodeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class NodeHome:
    """One node home (one organisation) driven through the real CLI, and its `serve` process."""

    root: Path
    org: str
    name: str
    url: str
    port: int
    db_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    serve_args: list[str] = field(default_factory=list)
    starts: int = 0
    # API tokens of the users made for test set-up, by user name (a token is shown only once).
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    @property
    def base_url(self) -> str:
        """Where the serve process itself listens (the card's URL may be a proxy in front of it)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CIVICSHARE_HOME": str(self.home), "CIVICSHARE_PASSPHRASE": PASSPHRASE,
                "TMPDIR": str(self.tmpdir), "COLUMNS": "200", "NO_COLOR": "1"}

    # --- the CLI -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, org: str, name: str, *, port: int | None = None, url: str | None = None,
               db_url: str | None = None) -> NodeHome:
        """``civicshare init`` a new home under ``root``. Its card's URL is ``url`` (e.g. a fault proxy's),
        or the address `serve` will listen on (``port``, chosen now if not given)."""
        port = port or free_port()
        node = cls(root, org, name, url or f"http://127.0.0.1:{port}", port, db_url)
        node.tmpdir.mkdir(parents=True, exist_ok=True)
        args = ["init", "--org", org, "--name", name, "--url", node.url, "--json"]
        if db_url:
            args += ["--db", db_url]
        node.run(*args)
        return node

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> CliResult:
        """Run ``civicshare ARGS`` against this home; raises NodeError on a non-zero exit if ``check``."""
        proc = subprocess.run([sys.executable, "-m", "civicshare", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        result = CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    def launch(self, *args: str) -> subprocess.Popen[str]:
        """Start ``civicshare ARGS`` against this home without waiting for it (output piped, as text)."""
        return subprocess.Popen([sys.executable, "-m", "civicshare", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def json(self, *args: str, timeout: float = 600) -> Any:
        """Run ``civicshare ARGS --json`` and return the parsed output."""
        return self.run(*args, "--json", timeout=timeout).json()

    def card(self, out: Path | None = None) -> Path:
        out = out or self.root / f"{self.org}.card.json"
        if not out.exists():
            self.run("card", "--out", str(out))
        return out

    def add_partner(self, card: Path) -> dict[str, Any]:
        return dict(self.json("partner", "add", str(card)))

    def add_user(self, name: str, role: str = "records_manager") -> str:
        """A new user's API token."""
        return str(self.json("user", "add", name, "--role", role)["token"])

    def import_document(self, path: Path, title: str | None = None) -> dict[str, Any]:
        args = ["import", str(path), "--document"] + (["--title", title] if title else [])
        return dict(self.json(*args))

    def import_dataset(self, path: Path, name: str) -> dict[str, Any]:
        return dict(self.json("import", str(path), "--dataset", name))

    def export(self, holding_id: str, out: Path, fmt: str | None = None) -> Path:
        self.json("export", holding_id, "--out", str(out), *(["--format", fmt] if fmt else []))
        return out

    def holdings(self) -> list[dict[str, Any]]:
        return list(self.json("holdings", "list"))

    # --- sharing (the commands of the exchange) ------------------------------------------------------

    def share(self, holding_id: str, to: str, *, agreement: str | None = None, wait: bool = False,
              timeout: float = 600) -> dict[str, Any]:
        args = ["share", holding_id, "--to", to] + (["--agreement", agreement] if agreement else [])
        args += ["--wait"] if wait else []
        return dict(self.json(*args, timeout=timeout))

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        return dict(self.json("transfers", "show", transfer_id))

    def transfers(self) -> list[dict[str, Any]]:
        return list(self.json("transfers", "list"))

    def inbox(self) -> list[dict[str, Any]]:
        return list(self.json("inbox"))

    # --- a fast look at the ledger, for timing kill points only -------------------------------------

    def peek(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the home's SQLite database.

        Only for choosing *when* to strike (a CLI call takes about a second, a transfer a few);
        every assertion goes through the CLI.
        """
        if self.db_url:
            raise NodeError("peek reads the home's own SQLite database")
        db = sqlite3.connect(f"file:{self.home / 'civicshare.db'}?mode=ro", uri=True, timeout=5)
        try:
            return list(db.execute(sql, params).fetchall())
        finally:
            db.close()

    def sent(self, transfer_id: str) -> tuple[str, int, int]:
        """(state, bytes_sent, size) of a transfer in this node's ledger."""
        rows = self.peek("SELECT state, bytes_sent, size FROM transfers WHERE id = ?", transfer_id)
        return (str(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else ("missing", 0, 0)

    def arrived(self, transfer_id: str) -> tuple[str, int]:
        """(state, bytes_received) of an inbound transfer at this node ("missing" before its manifest)."""
        rows = self.peek("SELECT state, bytes_received FROM inbound WHERE transfer_id = ?", transfer_id)
        return (str(rows[0][0]), int(rows[0][1])) if rows else ("missing", 0)

    # --- the serve process ---------------------------------------------------------------------------

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    def start(self, *extra: str, port: int | None = None, timeout: float = 60) -> NodeHome:
        """Start ``civicshare serve`` (in its own process group) and wait until /healthz answers.

        ``extra`` options are remembered, so ``restart()`` after a kill runs the same command.
        """
        if self.running:
            raise NodeError(f"{self.org} is already serving (pid {self.proc.pid if self.proc else '?'})")
        if extra:
            self.serve_args = list(extra)
        if port:
            self.port = port
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n--- start {self.starts} on port {self.port} ---\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "civicshare", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 *self.serve_args],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeError(f"serve for {self.org} exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise NodeError(f"serve for {self.org} did not answer /healthz in {timeout:.0f} s:\n{self.log_tail()}")

    def restart(self, timeout: float = 60) -> NodeHome:
        return self.start(timeout=timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise NodeError(f"{self.org} has not been started")
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the serve process (and its process group, led by its own pid), then reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the serve process and wait; SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            self.proc.wait(5)

    close = stop

    def peak_rss_mib(self) -> float:
        """The serve process's resident-set high-water mark (VmHWM), in MiB; read it before stopping."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise NodeError("no VmHWM in /proc status")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def announce(config: Any, line: str) -> None:
    """Print a summary line to the terminal even while pytest captures output (no -s needed)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print("\n" + line, flush=True)


def exchange_cards(*nodes: NodeHome) -> None:
    """Every node pins every other node's card (``card --out``, then ``partner add``)."""
    cards = {node.org: node.card() for node in nodes}
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.add_partner(cards[other.org])


@contextlib.contextmanager
def serving_pair(root: Path, db_url: str | None, *serve: str) -> Iterator[tuple[NodeHome, NodeHome]]:
    """north-wold (on ``db_url``) and south-fen (on SQLite), each pinning the other, both serving."""
    north = NodeHome.create(root / "north", "north-wold", "North Wold District Council", db_url=db_url)
    south = NodeHome.create(root / "south", "south-fen", "South Fen Borough Council")
    try:
        exchange_cards(north, south)
        north.start(*serve)
        south.start(*serve)
        yield north, south
    finally:
        north.close()
        south.close()


# --- agreements (issue 5) ----------------------------------------------------------------------------

DPO_NAME = "dpo-officer"


def _token(node: NodeHome, name: str, role: str) -> str:
    """The API token of the user ``name`` (made with ``role`` on first use) at ``node``."""
    if name not in node.tokens:
        node.tokens[name] = node.add_user(name, role)
    return node.tokens[name]


def _ensure_dpo(node: NodeHome) -> str:
    """The node's data protection officer (made on first use), who signs agreements for it."""
    _token(node, DPO_NAME, "dpo")
    return DPO_NAME


def _api(node: NodeHome, user: str, role: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """One call to the serving node's API as ``user``; NodeError unless it succeeds."""
    headers = {"Authorization": f"Bearer {_token(node, user, role)}", **kwargs.pop("headers", {})}
    response = httpx.request(method, node.base_url + path, headers=headers, timeout=60, **kwargs)
    if response.status_code >= 300:
        raise NodeError(f"{method} {path} at {node.org} answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def _agreement_options(body: dict[str, Any], options: dict[str, Any]) -> None:
    """Apply ``agree``'s options to a template agreement read from YAML."""
    from datetime import date, timedelta

    known = {"media_types", "days_after_receipt", "until_end", "start", "end", "onward_sharing", "classification"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise NodeError(f"agree() has no option {', '.join(unknown)}; it knows {', '.join(sorted(known))}")
    if "media_types" in options:
        body["data_items"]["media_types"] = list(options["media_types"])
    if options.get("until_end"):
        body["retention"] = {"until_agreement_end": True}
    elif options.get("days_after_receipt") is not None:
        body["retention"] = {"days_after_receipt": int(options["days_after_receipt"])}
    for key in ("onward_sharing", "classification"):
        if key in options:
            body[key] = options[key]

    def day(value: Any) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value))

    if options.get("start") is not None or options.get("end") is not None:
        start = day(options.get("start") or body["start_date"])
        end = day(options["end"]) if options.get("end") is not None else start + timedelta(days=364)
        body["start_date"], body["end_date"] = start.isoformat(), end.isoformat()
        body["review_date"] = max(start, end - timedelta(days=91)).isoformat()


def agree(provider: NodeHome, recipient: NodeHome, *, dataset: str | None = None,
          fields: list[str] | tuple[str, ...] | None = None, documents: bool = False, timeout: float = 60,
          **options: Any) -> str:
    """An agreement from ``provider`` to ``recipient`` in force at both nodes; returns its id.

    Both nodes must be serving and pin each other's cards. The template comes from the CLI (for
    ``dataset`` with ``fields``, or ``documents``); then, through each node's API, a records manager
    creates and proposes it and the data protection officer of each node signs it (users made on
    first use, their tokens kept on the NodeHome).
    ``options``: media_types, days_after_receipt, until_end, start, end (dates or ISO text),
    onward_sharing, classification. Waits until the agreement is signed by both at both ends.
    """
    import yaml

    if (dataset is None) == (not documents):
        raise NodeError("agree() needs dataset=NAME (with fields=[...]) or documents=True")
    args = ["agreement", "template", "--provider", provider.org, "--recipient", recipient.org]
    if dataset is not None:
        args += ["--dataset", dataset] + (["--fields", ",".join(fields)] if fields else [])
    else:
        args.append("--documents")
    body = yaml.safe_load(provider.run(*args).out)
    _agreement_options(body, options)
    # The rest goes through the serving nodes' API, as a web page would: the same use cases, without
    # starting a command for each step.
    manager = ("agree-records-manager", "records_manager")
    created = _api(provider, *manager, "POST", "/v1/agreements", content=json.dumps(body, default=str),
                   headers={"Content-Type": "application/json"})
    agreement_id, version = str(created["id"]), int(created["version"])
    _api(provider, *manager, "POST", f"/v1/agreements/{agreement_id}/propose", params={"version": version})

    def shown(node: NodeHome) -> dict[str, Any] | None:
        response = httpx.get(f"{node.base_url}/v1/agreements/{agreement_id}", params={"version": version},
                             headers={"Authorization": f"Bearer {_token(node, *manager)}"}, timeout=60)
        return dict(response.json()) if response.status_code == 200 else None

    wait_for(lambda: shown(recipient), timeout, what=f"{recipient.org} to receive the proposal of {agreement_id}")
    for node in (recipient, provider):
        _api(node, DPO_NAME, "dpo", "POST", f"/v1/agreements/{agreement_id}/sign", params={"version": version})

    def signed_by_both(node: NodeHome) -> bool:
        seen = shown(node)
        return seen is not None and not seen["waiting_for"]

    for node in (provider, recipient):
        wait_for(functools.partial(signed_by_both, node), timeout,
                 what=f"{agreement_id} to be signed by both parties at {node.org}")
    return agreement_id
