"""``civicshare demo --serve`` (``make serve``): two demo nodes to try the web interface on, until Ctrl-C.

Node A is a shared-service centre hosting North Wold and South Fen; node B hosts East Marsh. North
Wold holds a synthetic residents dataset and a document, and has signed agreements with East Marsh
(the residents' council tax fields) and South Fen (plain-text documents), so a share can be done
from the browser at once. One dataset has already gone to East Marsh, so inboxes, ledgers and
dashboards have something in them. Every council has a demo user for each role, with a password
made for this run; they are printed with the addresses to sign in at.

The homes live under one folder (``.demo-serve/`` by default) that each run empties and remakes:
it is demo material, never real data.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from civicshare.access import Actor, Role
from civicshare.demo import NOTE
from civicshare.demo_agreements import AGREED_FIELDS, DPO, RECORDS_MANAGER, Party, make_agreement
from civicshare.demo_nodes import DemoFailed, serving
from civicshare.errors import Conflict
from civicshare.memfile import memory_file
from civicshare.node import Node
from civicshare.synthetic import residents_csv

NORTH, SOUTH, EAST = "north-wold", "south-fen", "east-marsh"
NAMES = {NORTH: "North Wold District Council", SOUTH: "South Fen Borough Council",
         EAST: "East Marsh District Council"}
# The demo users of every council: the two the scripted demo uses, and one for each other role.
USERS = ((RECORDS_MANAGER, Role.RECORDS_MANAGER), (DPO, Role.DPO), ("demo-admin", Role.ADMIN),
         ("demo-caseworker", Role.CASEWORKER))
MARKER = "civicshare-demo-serve"
ROWS = 500
DELIVERY_SECONDS = 90.0


@dataclass(frozen=True)
class DemoUser:
    node_url: str
    org: str
    name: str
    role: Role
    password: str


def _password(node: Node) -> str:
    """Eighty random bits from the node's generator, written as four groups a person can type."""
    text = base64.b32encode(node.rng(10)).decode().lower()
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def _fresh(root: Path) -> None:
    """Empty ``root`` if an earlier run made it; refuse any other folder that has something in it."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise Conflict(f"{root} is not empty and was not made by `civicshare demo --serve`; choose another "
                           "folder with --dir.")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("Demo node homes made by `civicshare demo --serve`; each run remakes them.\n")


def _pin(node_from: Node, org: str, node_to: Node, partner: str) -> None:
    card = node_to.card(Actor(partner, "demo-admin", Role.ADMIN))
    node_from.add_partner(Actor(org, "demo-admin", Role.ADMIN), json.dumps(card))


def _users(node: Node, url: str, org: str) -> list[DemoUser]:
    made = []
    for name, role in USERS:
        password = _password(node)
        node.add_user(org, name, role, password, by="demo")
        made.append(DemoUser(url, org, name, role, password))
    return made


def _holdings(node: Node) -> tuple[str, str]:
    """North Wold's residents dataset and data sharing note; returns their ids."""
    rm = Actor(NORTH, RECORDS_MANAGER, Role.RECORDS_MANAGER)
    with memory_file("residents.csv", residents_csv(ROWS)) as (_fd, path):
        dataset = node.import_dataset(rm, path, "residents", label="residents.csv")
    document = node.import_document(rm, io.BytesIO(NOTE.encode()), "sharing-note.txt", title="Data sharing note")
    return dataset.id, document.id


def prepare(root: Path, port: int, passphrase: str, servers: ExitStack,
            say: Callable[[str], None]) -> tuple[list[DemoUser], list[subprocess.Popen[bytes]]]:
    """Make both homes, start them serving (their ``serving`` blocks join ``servers``) and fill them."""
    url_a, url_b = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    node_a = Node.init(root / "node-a", NORTH, NAMES[NORTH], url=url_a, passphrase=passphrase, by="demo")
    node_b = Node.init(root / "node-b", EAST, NAMES[EAST], url=url_b, passphrase=passphrase, by="demo")
    with node_a, node_b:
        node_a.add_organisation(SOUTH, NAMES[SOUTH], by="demo")
        for (n_from, org, n_to, partner) in ((node_a, NORTH, node_b, EAST), (node_b, EAST, node_a, NORTH),
                                             (node_a, NORTH, node_a, SOUTH), (node_a, SOUTH, node_a, NORTH)):
            _pin(n_from, org, n_to, partner)
        users = [*_users(node_a, url_a, NORTH), *_users(node_a, url_a, SOUTH), *_users(node_b, url_b, EAST)]
        dataset_id, _document_id = _holdings(node_a)
        say(f"Made node A ({NORTH} and {SOUTH}) and node B ({EAST}) under {root}, with demo users and "
            f"{ROWS} synthetic residents.")
        procs = [servers.enter_context(serving(node_a.layout.home, port, passphrase)),
                 servers.enter_context(serving(node_b.layout.home, port + 1, passphrase))]
        north, east = Party(NORTH, "North Wold", node_a), Party(EAST, "East Marsh", node_b)
        quiet: Callable[[str], None] = lambda _line: None  # noqa: E731 - the scripted demo's narration
        to_east = make_agreement(north, east, "Council tax: East Marsh bills residents who moved across the "
                                 "border.", quiet, dataset="residents", fields=AGREED_FIELDS)
        make_agreement(north, Party(SOUTH, "South Fen", node_a), "Shared revenues and benefits service: "
                       "guidance notes.", quiet, media_types=["text/plain"])
        rm = Actor(NORTH, RECORDS_MANAGER, Role.RECORDS_MANAGER)
        sent = node_a.exchange.share(rm, dataset_id, EAST, agreement=to_east.id)
        done = node_a.exchange.wait(rm, sent.id, timeout=DELIVERY_SECONDS, poll=0.2)
        if done.state != "delivered":
            raise DemoFailed(f"The demo's first share {sent.id} did not arrive: {done.failed_reason}")
        say(f"Signed agreements North Wold - East Marsh ({to_east.id}) and North Wold - South Fen, and "
            f"shared the residents once ({sent.id}, delivered, receipt verified).")
    return users, procs


def sign_in_sheet(users: list[DemoUser]) -> list[str]:
    """The lines that tell people where to go and whom to sign in as."""
    lines = ["", "Sign in at:"]
    for url in dict.fromkeys(u.node_url for u in users):
        orgs = ", ".join(dict.fromkeys(f"{NAMES[u.org]} ({u.org})" for u in users if u.node_url == url))
        lines.append(f"  {url}/web/  for {orgs}")
    lines += ["", "Demo users (passwords made for this run):",
              f"  {'organisation':<12} {'user':<22} {'role':<16} password"]
    lines += [f"  {u.org:<12} {u.name:<22} {u.role.value:<16} {u.password}" for u in users]
    lines += ["", "Try: sign in to North Wold as demo-records-manager, then Share the residents dataset with "
              "East Marsh under the agreement.", "Press Ctrl-C to stop."]
    return lines


def _check_free(port: int) -> None:
    for candidate in (port, port + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                raise Conflict(f"Port {candidate} on 127.0.0.1 is in use; the demo needs {port} and {port + 1}. "
                               "Choose others with --port.") from None


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve_demo(root: Path, port: int, say: Callable[[str], None]) -> None:
    """Make the demo nodes, print where and whom to sign in as, and serve until Ctrl-C (or SIGTERM)."""
    root = root.resolve()
    _check_free(port)
    _fresh(root)
    # A service manager's SIGTERM stops the demo nodes as Ctrl-C does, rather than orphaning them; and
    # Ctrl-C works even where the shell started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    passphrase = base64.urlsafe_b64encode(os.urandom(24)).decode()
    with ExitStack() as servers:
        users, procs = prepare(root, port, passphrase, servers, say)
        for line in sign_in_sheet(users):
            say(line)
        try:
            # The serving blocks stop both nodes when this ends; a node that dies ends the demo.
            while all(proc.poll() is None for proc in procs):
                time.sleep(0.5)
            raise DemoFailed(f"A demo node stopped by itself; see the serve.log files under {root}.")
        except KeyboardInterrupt:
            say("Stopping the demo nodes.")

