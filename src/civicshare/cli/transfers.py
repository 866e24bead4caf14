"""``share``, ``transfers list|show``, ``inbox`` and ``receive``: sending holdings to partners."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from civicshare.cli.context import STATE, err, out, print_json, print_table, size_words
from civicshare.cli.org import OrgOpt
from civicshare.clock import iso
from civicshare.errors import UsageError
from civicshare.exchange.transfers import DELIVERED, FAILED, Transfer

transfers_app = typer.Typer(help="The ledger of transfers this organisation sent.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(app: typer.Typer) -> None:
    app.command("share")(share)
    app.command("inbox")(inbox)
    app.command("receive")(receive)
    app.add_typer(transfers_app, name="transfers")


def _bytes(t: Transfer) -> str:
    return f"{size_words(t.bytes_sent)} of {size_words(t.size)}"


def _progress(t: Transfer) -> str:
    line = f"{t.id}: {t.state}, {_bytes(t)} acknowledged, attempt {t.attempts}"
    if t.last_error and t.state != DELIVERED:
        line += f"; last error: {t.last_error}"
    return line


def share(
    holding_id: Annotated[str, typer.Argument(metavar="HOLDING", help="The holding to send.")],
    to: Annotated[str, typer.Option("--to", help="The partner organisation to send it to.")],
    agreement: Annotated[str | None, typer.Option("--agreement", metavar="ID", help="Required: the active data "
                                                  "sharing agreement it is shared under (its id). A dataset "
                                                  "carries only the agreed fields.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the running server delivers it (or it fails).")]
    = False,
    timeout: Annotated[float, typer.Option("--timeout", help="With --wait: stop waiting after this many seconds "
                                                             "(the transfer stays queued).")] = 600.0,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write an offline package to this new file "
                                                                "instead of sending over the network.")] = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Seal HOLDING for partner ORG under an agreement and put it in the outbox; `civicshare serve` delivers it.

    The agreement must be active, name ORG as a recipient and cover the holding and its classification;
    otherwise the share is refused (and logged) with the rule and the reason.
    """
    if wait and out_file is not None:
        raise UsageError("--wait is for the network route; an offline package is delivered by hand.")
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        with err.status(f"Sealing {holding_id} for {to} ..."):
            transfer = node.share(actor, holding_id, to, agreement=agreement, out=out_file, ask_partner=True)
        if not json_out:
            if out_file is not None:
                out.print(f"Wrote transfer {transfer.id} of {holding_id} for {to} to {out_file} "
                          f"({size_words(transfer.size)}); carry it to them, then run 'civicshare receive' "
                          "on the receipt they give back.", markup=False)
            else:
                out.print(transfer.id, markup=False)
        if wait:
            transfer = node.exchange.wait(actor, transfer.id, timeout=timeout,
                                          on_change=lambda t: err.print(_progress(t), markup=False))
        if json_out:
            print_json(transfer.to_json())
        if transfer.state == FAILED:
            err.print(f"civicshare: transfer {transfer.id} failed: {transfer.failed_reason}", markup=False)
            raise typer.Exit(1)


@transfers_app.command("list")
def transfers_list(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """Every transfer sent, with its state: queued, sending, delivered, failed or exported."""
    with STATE.node() as node:
        found = node.transfers(STATE.operator(node, org))
        now = node.clock()
    if json_out:
        print_json([t.to_json(now=now) for t in found])
        return
    print_table("Transfers", ["id", "holding", "to", "route", "state", "bytes", "attempts", "created", "delivered",
                              "problem", "deletion at recipient"],
                [[t.id, t.holding_id, t.recipient, t.route, t.state, _bytes(t), t.attempts, iso(t.created_at),
                  iso(t.delivered_at), t.failed_reason or t.last_error, _deletion(t.deletion_json(now))]
                 for t in found])


def _deletion(deletion: dict[str, Any] | None) -> str:
    return "" if deletion is None else str(deletion["words"])


@transfers_app.command("show")
def transfers_show(transfer_id: Annotated[str, typer.Argument(metavar="ID")], org: OrgOpt = None,
                   json_out: JsonOpt = False) -> None:
    """One transfer: its progress, the manifest it was sent with and the recipient's verified receipt."""
    with STATE.node() as node:
        transfer = node.transfer(STATE.operator(node, org), transfer_id)
        now = node.clock()
    data = transfer.to_json(detail=True, now=now)
    if json_out:
        print_json(data)
        return
    manifest = data["manifest"]
    holding = manifest["holding"]
    rows: list[tuple[str, object]] = [
        ("id", transfer.id), ("from", transfer.org_id), ("to", transfer.recipient), ("route", transfer.route),
        ("state", transfer.state), ("holding", f"{transfer.holding_id} ({holding['kind']} {holding['name']!r})"),
        ("agreement", _agreement(manifest["agreement"])), ("bytes", _bytes(transfer)),
        ("attempts", transfer.attempts),
        ("created", f"{iso(transfer.created_at)} by {transfer.created_by}"),
        ("plaintext", f"{manifest['plaintext']['size']} bytes, sha256 {manifest['plaintext']['sha256']}"),
        ("ciphertext", f"{manifest['ciphertext']['size']} bytes, sha256 {manifest['ciphertext']['sha256']}"),
        ("parts", f"{manifest['parts']} of up to {manifest['part_size']} bytes"),
    ]
    rows.append(("classification", holding["classification"]))
    if holding["rows"] is not None:
        rows.append(("rows", holding["rows"]))
        rows.append(("fields", ", ".join(c["name"] for c in holding["columns"] or [])))
    if transfer.last_error and transfer.state != DELIVERED:
        rows.append(("last error", transfer.last_error))
    if transfer.next_attempt_at and transfer.state in ("queued", "sending"):
        rows.append(("next attempt", iso(transfer.next_attempt_at)))
    if transfer.failed_reason:
        rows.append(("failed", transfer.failed_reason))
    receipt = transfer.receipt
    if receipt is not None:
        body = receipt["body"]
        rows += [("delivered", iso(transfer.delivered_at)),
                 ("receipt", f"verified: signed by {transfer.recipient}, their holding {body['holding']}, "
                             f"received {body['received']}")]
    if data["deletion"] is not None:
        deletion, certificate = data["deletion"], data["deletion"]["certificate"]
        rows.append(("deletion", deletion["words"] + (f" (deleted {certificate['body']['deleted']}: "
                                                     f"{certificate['body']['reason']})" if certificate else "")))
    for label, value in rows:
        out.print(f"{label:>12}: {value}", markup=False)


def _agreement(ref: dict[str, object] | None) -> str:
    if ref is None:
        return "none"
    return f"{ref['id']} version {ref['version']} (sha256 {ref['sha256']})"


def inbox(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """Transfers partners sent to this organisation: arriving, delivered (a new holding) or refused.

    A dataset shows the quality score its sender stated, to be seen before the data is used.
    """
    with STATE.node() as node:
        found = node.inbox(STATE.operator(node, org))
    if json_out:
        print_json([i.to_json() for i in found])
        return
    rows = []
    for item in found:
        data = item.to_json()
        rows.append([data["sender"], data["transfer"], data["state"], data["holding"], data["kind"], data["name"],
                     size_words(data["size"]), data["rows"], _quality(data), data["received"],
                     _deletion(data["deletion"])])
    print_table("Inbox", ["from", "transfer", "state", "holding", "kind", "name", "size", "rows", "quality",
                          "received", "retention"], rows)


def _quality(data: dict[str, Any]) -> str:
    """The sender's quality score, and how many rows it found a fault in."""
    if data["kind"] != "dataset":
        return ""
    summary = data["quality"]
    if summary is None:
        return "not stated"
    return f"{summary['score']:g} ({summary['invalid_rows']} of {summary['rows']} rows with faults)"


def receive(
    file: Annotated[Path, typer.Argument(help="An offline package, or a receipt carried back.", exists=True,
                                         dir_okay=False, readable=True)],
    receipt_out: Annotated[Path | None, typer.Option("--receipt", help="Where to write the receipt "
                                                                       "(default: FILE.receipt.json).")] = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import an offline package (and write its receipt), or record a receipt for a package you sent."""
    with STATE.node() as node:
        result = node.receive(STATE.operator(node, org), file, receipt_out=receipt_out)
    if json_out:
        print_json(result)
    elif result["kind"] == "package":
        out.print(result["holding"], markup=False)
        err.print(f"Stored transfer {result['transfer']} from {result['sender']} as holding {result['holding']}; "
                  f"hand the receipt {result['receipt']} back to {result['sender']}.", markup=False)
    else:
        out.print(f"Transfer {result['transfer']} to {result['recipient']} is {result['state']}: the receipt "
                  "verified.", markup=False)
