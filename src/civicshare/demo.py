"""The scripted scenario behind ``civicshare demo``: three councils on two nodes, keys, holdings, data quality,
agreements, sharing.

Every step goes through the same ``Node`` the CLI and the API use, and every check raises on
failure, so a demo that prints its summary has shown each promise holding.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from civicshare.access import Actor, Role
from civicshare.audit.merkle import leaf_hash, verify_inclusion
from civicshare.demo_nodes import check as _check
from civicshare.demo_nodes import free_port
from civicshare.demo_quality import run_quality
from civicshare.demo_share import run_share
from civicshare.errors import NotFound, Shredded
from civicshare.memfile import memory_file
from civicshare.node import Node
from civicshare.synthetic import RESIDENT_COLUMNS, residents_csv

NOTE = """Data sharing note (synthetic)

North Wold District Council shares council tax records with South Fen Borough Council's revenues
and benefits service under the shared-service agreement. This note is demo material only.
"""


def run_demo(rows: int = 10_000, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = say or (lambda _line: None)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="civicshare-demo-"))
    try:
        return _run(workdir / "home", rows, say, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(home: Path, rows: int, say: Callable[[str], None], started: float) -> dict[str, Any]:
    passphrase = base64.urlsafe_b64encode(os.urandom(24)).decode()
    port_a, port_b = free_port(), free_port()
    node = Node.init(home, "north-wold", "North Wold District Council", url=f"http://127.0.0.1:{port_a}",
                     passphrase=passphrase)
    with node:
        node.add_organisation("south-fen", "South Fen Borough Council")
        say(f"Created a throwaway node home at {home} hosting north-wold and south-fen.")
        north = Actor("north-wold", "demo-records-manager", Role.RECORDS_MANAGER)
        south = Actor("south-fen", "demo-records-manager", Role.RECORDS_MANAGER)
        node.add_user("north-wold", north.name, north.role)
        node.add_user("south-fen", south.name, south.role)

        source = residents_csv(rows)
        with memory_file("residents.csv", source) as (_fd, path):
            dataset = node.import_dataset(north, path, "residents", label="residents.csv")
        _check(dataset.rows == rows, f"{rows} rows imported")
        say(f"Imported {dataset.rows:,} synthetic residents (Faker en_GB) as {dataset.id}.")
        document = node.import_document(north, io.BytesIO(NOTE.encode()), "sharing-note.txt",
                                        title="Data sharing note")
        say(f"Stored a document as {document.id} ({document.size} bytes).")

        admin = Actor("north-wold", "demo-admin", Role.ADMIN)
        say("")
        say("Key register of north-wold:")
        for key in node.key_register(admin):
            say(f"  {key.id}  {key.purpose:<9} {key.algorithm:<42} {key.custody:<7} {key.location}")
        say("")
        say("Holdings of north-wold:")
        for h in node.list_holdings(north):
            rows_text = f"{h.rows:,} rows" if h.rows is not None else "whole file"
            say(f"  {h.id}  {h.kind:<8} {h.name:<20} {rows_text:<14} {h.size:,} bytes")

        expected = _source_digest(source)
        _check(_export_digest(node, north, dataset.id) == expected, "export matches the import")
        say("Exported the dataset and checked it matches the source row for row.")

        canaries = [line.split(",")[10].encode() for line in source.decode().splitlines()[1:51]]
        found = _scan(home, canaries)
        _check(not found, f"no resident e-mail address in plaintext under the home ({found})")
        say("Scanned every file under the home for 50 residents' e-mail addresses: none in plaintext.")

        new_kek, rewrapped = node.rotate_kek(admin)
        _check(_export_digest(node, north, dataset.id) == expected, "export after KEK rotation")
        say(f"Rotated the KEK to {new_kek}, re-wrapped {rewrapped} data keys; the dataset still exports.")

        try:
            node.holding(south, dataset.id)
            _check(False, "south-fen cannot see north-wold's holding")
        except NotFound:
            say("South Fen cannot see North Wold's holdings: organisations on one node share nothing.")

        say("")
        quality = run_quality(node, north, home.parent, say)

        say("")
        shared = run_share(node, port_a, home.parent / "node-b", port_b, passphrase, dataset.id, document.id, say)
        say("")

        node.shred(north, document.id)
        try:
            with memory_file("shredded") as (_fd, out):
                node.export(north, document.id, out, overwrite=True)
            _check(False, "a shredded document cannot be exported")
        except Shredded as exc:
            say(f"Shredded the document: {exc.message}")

        say("")
        say(f"Who touched the residents dataset ({dataset.id}):")
        for e in node.audit_entries(admin, obj=dataset.id):
            say(f"  #{e.index:<3} {e.to_json()['time']}  {e.actor:<22} {e.action:<15} {e.outcome}")
        signed = node.audit_checkpoint(admin)
        report = node.audit_verify(admin, [signed.note])
        proof = node.audit_inclusion(admin, node.audit_entries(admin, obj=dataset.id)[0].index or 0)
        verify_inclusion(leaf_hash(proof["entry"].encode()), proof["index"], proof["tree_size"],
                         [base64.b64decode(h) for h in proof["hashes"]], signed.root_hash)
        say(f"Signed audit checkpoint of {signed.size} entries; the log verifies and the import's inclusion "
            f"proof ({len(proof['hashes'])} hashes) checks against the signed root.")
        _check(report.size == signed.size, "audit log verifies")

        checks = ["round trip", "no plaintext under home", "rotation", "isolation", *quality.checks, *shared.checks,
                  "shred", "audit log"]
        summary: dict[str, Any] = {
            "home": "(removed)", "organisations": [o.id for o in node.organisations()],
            "dataset": {"id": dataset.id, "rows": dataset.rows, "columns": len(RESIDENT_COLUMNS)},
            "quality": quality.summary,
            "document": {"id": document.id, "shredded": True},
            "agreements": shared.agreements, "transfers": shared.transfers, "refusals": shared.refusals,
            "keys": len(node.key_register(admin)), "kek_rotated_to": new_kek,
            "audit": {"entries": signed.size, "root_hash": base64.b64encode(signed.root_hash).decode()},
            "checks": checks,
            "seconds": round(time.monotonic() - started, 1),
        }
        say("")
        say(f"Demo finished in {summary['seconds']} s: all {len(checks)} checks passed.")
        return summary


def _source_digest(source: bytes) -> str:
    lines = source.decode().splitlines()
    import csv

    reader = csv.reader(lines)
    header = next(reader)
    digest = hashlib.sha256()
    for row in reader:
        digest.update(json.dumps(dict(zip(header, row, strict=True)), sort_keys=True).encode())
    return digest.hexdigest()


def _export_digest(node: Node, actor: Actor, holding_id: str) -> str:
    with memory_file("export.jsonl") as (fd, out):
        node.export(actor, holding_id, out, "jsonl", overwrite=True)
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as fh:
            digest = hashlib.sha256()
            for line in fh:
                record = json.loads(line)
                digest.update(json.dumps({k: v or "" for k, v in record.items()}, sort_keys=True).encode())
    return digest.hexdigest()


def _scan(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}" for n in needles if n in data]
    return hits
