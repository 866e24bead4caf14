"""``audit`` commands: who touched what, signed checkpoints, proofs and verification."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from civicshare.cli.context import STATE, err, out, print_json, print_table
from civicshare.cli.org import OrgOpt
from civicshare.errors import Unreachable, UsageError

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def parse_since(text: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is taken as UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date or time such as 2026-11-01 or 2026-11-01T09:30.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("log")
def audit_log(
    obj: Annotated[str | None, typer.Option("--object", help="Only events about this holding, key or user.")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only events by this person or process.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only events at or after this time (ISO 8601).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many events.")] = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who touched what, and when: the audit entries, oldest first."""
    with STATE.node() as node:
        entries = node.audit_entries(STATE.operator(node, org), obj=obj, by=actor, since=parse_since(since),
                                     limit=limit)
        if json_out:
            print_json([e.to_json() for e in entries])
            return
        print_table("Audit log", ["index", "time", "actor", "action", "object", "outcome", "details"],
                    [[e.index, e.to_json()["time"], e.actor, e.action, e.object, e.outcome,
                      ", ".join(f"{k}={v}" for k, v in e.details.items())] for e in entries])


@audit_app.command("checkpoint")
def audit_checkpoint(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """Sign a checkpoint of the log as it stands, and print it with the key to check it by."""
    with STATE.node() as node:
        who = STATE.operator(node, org)
        signed = node.audit_checkpoint(who)
        key = node.audit_verifier_key(who)
        if json_out:
            print_json({**signed.to_json(), "verifier_key": key})
            return
        # Only the signed note goes to standard output, so `audit checkpoint > FILE` saves a valid note.
        out.print(signed.note, end="", markup=False)
        err.print(f"Check it with the verifier key: {key}", markup=False)


@audit_app.command("proof")
def audit_proof(
    index: Annotated[int | None, typer.Option("--index", help="Inclusion proof of this entry.")] = None,
    size: Annotated[int | None, typer.Option("--size", help="In the tree of this many entries (default: all).")]
    = None,
    from_size: Annotated[int | None, typer.Option("--from", help="Consistency proof from this tree size ...")]
    = None,
    to_size: Annotated[int | None, typer.Option("--to", help="... to this one (default: all).")] = None,
    org: OrgOpt = None,
) -> None:
    """An inclusion (--index N [--size S]) or consistency (--from A [--to B]) proof, as JSON."""
    if (index is None) == (from_size is None):
        raise UsageError("Ask for one proof: --index N [--size S] for inclusion, or --from A [--to B] for consistency.")
    with STATE.node() as node:
        who = STATE.operator(node, org)
        if index is not None:
            if to_size is not None:
                raise UsageError("--to belongs to a consistency proof; use --size with --index.")
            print_json(node.audit_inclusion(who, index, size))
        else:
            assert from_size is not None
            if size is not None:
                raise UsageError("--size belongs to an inclusion proof; use --to with --from.")
            print_json(node.audit_consistency(who, from_size, to_size))


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="A signed checkpoint saved earlier (by you or a partner) to check the log against.",
        exists=True, dir_okay=False, readable=True)] = None,
    witnesses: Annotated[bool, typer.Option(
        "--witnesses", help="Also ask every partner for the checkpoints of this log it kept, and check them all."
    )] = False,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recompute the log from its entries and check every checkpoint. Exit 1 names the first bad index."""
    notes = [path.read_text(encoding="utf-8") for path in checkpoint or []]
    with STATE.node() as node:
        report = node.audit_verify(STATE.operator(node, org), notes, witnesses=witnesses)
        if json_out:
            print_json(report.to_json())
        else:
            out.print(f"The audit log of {report.org_id} verifies: {report.size} entries, "
                      f"{len(report.checkpoints)} checkpoints checked.", markup=False)
            for witness in report.witnesses or []:
                out.print(f"  {witness_words(witness)}", markup=False)
        unasked = [w["partner"] for w in report.witnesses or [] if w["error"]]
        if unasked:
            raise Unreachable("The log could not be checked against the checkpoints of "
                              + ", ".join(unasked) + " (see above); try again when they can be reached.")


def witness_words(witness: dict[str, Any]) -> str:
    """One partner's line of ``audit verify --witnesses``, in words (none held is not a match)."""
    partner, count = witness["partner"], witness["checkpoints"]
    if witness["error"]:
        return f"{partner}: not checked: {witness['error']}"
    if not count:
        return (f"{partner}: holds no checkpoint of this log yet, so there is nothing to compare (a partner "
                "keeps one from every receipt this organisation signs for it, and from the periodic exchange).")
    if count == 1:
        return f"{partner}: the one checkpoint it holds matches this log."
    return f"{partner}: all {count} checkpoints it holds match this log."
