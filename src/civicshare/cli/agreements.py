"""``agreement`` commands: the template to start from, the register of data sharing agreements, and the
lifecycle (propose, sign, revoke)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from civicshare.agreements.model import MAX_AGREEMENT_BYTES, DatasetItems
from civicshare.agreements.register import AgreementRecord
from civicshare.cli.context import STATE, err, out, print_json, print_table, write_new_file
from civicshare.cli.org import OrgOpt
from civicshare.errors import CivicshareError, UsageError
from civicshare.exchange.notices import Notice
from civicshare.node import Node

agreement_app = typer.Typer(help="Data sharing agreements: the template, the register the ICO expects, and "
                                 "proposing, signing and revoking them.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The agreement's id, such as DSA-2026-0001.")]
VersionOpt = Annotated[int | None, typer.Option("--version", min=1, help="Which version (the newest if left out).")]


@agreement_app.command("template")
def template(
    provider: Annotated[str, typer.Option("--provider", help="The organisation that provides the data.")],
    recipient: Annotated[str, typer.Option("--recipient", help="The organisation that receives it.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="The dataset shared (its name).")] = None,
    fields: Annotated[str | None, typer.Option("--fields", help="The fields shared, comma-separated: a,b,c.")]
    = None,
    documents: Annotated[bool, typer.Option("--documents", help="The agreement covers documents.")] = False,
    org: OrgOpt = None,
) -> None:
    """Print a complete agreement that validates as it stands; check every line marked REVIEW."""
    if (dataset is None) == (not documents):
        raise UsageError("Say what the agreement covers: --dataset NAME (with --fields a,b,...) or --documents.")
    if fields is not None and dataset is None:
        raise UsageError("--fields goes with --dataset.")
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields is not None else None
    with STATE.node() as node:
        # The provider, when this node hosts it, is who drafts by default.
        hosted = {o.id for o in node.organisations()}
        actor = STATE.operator(node, org if org is not None or provider not in hosted else provider)
        text = node.agreement_template(actor, provider, recipient, dataset=dataset, fields=chosen,
                                       documents=documents)
    sys.stdout.write(text)


def _read(path: str) -> tuple[bytes, str]:
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_AGREEMENT_BYTES + 1), "stdin"
        with open(path, "rb") as fh:
            return fh.read(MAX_AGREEMENT_BYTES + 1), path
    except FileNotFoundError:
        raise UsageError(f"There is no agreement file {path}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read the agreement file {path}: {exc.strerror}.") from None


def _describe(r: AgreementRecord) -> list[str]:
    a = r.agreement
    items = a.data_items
    covered = (f"dataset {items.dataset}: {', '.join(items.fields)}" if isinstance(items, DatasetItems)
               else f"documents: {', '.join(items.media_types)}")
    special = f"yes, Article 9(2)({a.article_9_condition})" if a.special_category_data else "no"
    lines = [
        f"{r.id} version {r.version} ({r.state})",
        f"  hash:            {r.hash}",
        "  parties:         " + "; ".join(f"{p.name} ({p.org}, {p.role.replace('_', ' ')})" for p in a.parties),
        f"  provider:        {a.provider}", f"  recipients:      {', '.join(a.recipients)}",
        f"  purpose:         {a.purpose}", f"  lawful basis:    {a.lawful_basis_words()}",
        f"  special category: {special}",
        f"  data items:      {covered}", f"  classification:  {a.classification}",
        f"  onward sharing:  {'allowed' if a.onward_sharing else 'not allowed'}",
        *([f"  minimum quality: {a.minimum_quality} (a share scoring lower is refused)"]
          if a.minimum_quality is not None else []),
        f"  retention:       {a.retention_words()}",
        f"  dates:           {a.start_date} to {a.end_date}, next review {a.review_date}",
        f"  DPIA:            {a.dpia_reference}",
        f"  created:         {r.to_json()['created']} by {r.created_by}",
    ]
    if r.proposed_by:
        lines.append(f"  proposed:        {r.to_json()['proposed']} by {r.proposed_by}")
    lines += [f"  signed:          {s.party} by {s.signed_by} on {s.to_json()['signed']}" for s in r.signatures]
    if r.waiting_for and r.stored_state not in ("revoked", "superseded"):
        lines.append(f"  waiting for:     {', '.join(r.waiting_for)}")
    stop = r.stop_words()
    lines.append(f"  in force:        {'yes' if stop is None else 'no: ' + stop}")
    lines += [f"  warning:         {w}" for w in r.warnings]
    return lines


def _notice_lines(notices: list[Notice]) -> list[str]:
    return [f"  notice:          {n.words()}" for n in notices]


def _send_now(node: Node, org_id: str) -> None:
    """Send what the command queued now; whatever cannot go yet stays queued for ``serve``."""
    try:
        node.send_notices(org_id)
    except CivicshareError as exc:
        err.print(f"The notices could not be sent yet ({exc.message}); 'civicshare serve' keeps trying.",
                  markup=False)


def _report(record: AgreementRecord, notices: list[Notice], json_out: bool, done: str) -> None:
    if json_out:
        print_json({**record.to_json(), "notices": [n.to_json() for n in notices]})
        return
    out.print(done, markup=False)
    for line in _describe(record)[1:] + _notice_lines(notices):
        out.print(line, markup=False)


@agreement_app.command("create")
def create(
    file: Annotated[str, typer.Option("--file", help="The agreement, YAML or JSON (- for stdin).")],
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check an agreement file (every problem at once) and add it to the register as a draft."""
    data, name = _read(file)
    with STATE.node() as node:
        record = node.create_agreement(STATE.operator(node, org), data, filename=name)
    if json_out:
        print_json(record.to_json())
        return
    out.print(f"Added {record.id} version {record.version} to the register of {record.org_id} as a draft.",
              markup=False)
    for line in _describe(record)[1:]:
        out.print(line, markup=False)


@agreement_app.command("list")
def list_(
    org: OrgOpt = None,
    json_out: JsonOpt = False,
    csv_file: Annotated[str | None, typer.Option("--csv", help="Write the register as CSV to this new file "
                                                               "(- for stdout).")] = None,
) -> None:
    """The register: every agreement with its state, parties, purpose, next review and warnings."""
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        if csv_file is not None:
            text = node.agreements_csv(actor)
            if csv_file == "-":
                sys.stdout.write(text)
            else:
                write_new_file(Path(csv_file), text)
                out.print(f"Wrote the register of {actor.org_id} to {csv_file}.", markup=False)
            return
        found = node.agreements(actor)
    if json_out:
        print_json([r.to_json(with_body=False) for r in found])
        return
    print_table("Data sharing agreements", ["id", "version", "state", "parties", "purpose", "next review",
                                            "warnings"],
                [[r.id, r.version, r.state, ", ".join(r.agreement.party_ids), r.agreement.purpose,
                  r.agreement.review_date.isoformat(), "; ".join(r.warnings)] for r in found])


@agreement_app.command("show")
def show(
    agreement_id: IdArg,
    version: VersionOpt = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One agreement: every field, its hash, state, signatures, warnings and the notices still on their way
    to other parties (--json includes the whole agreement)."""
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        record = node.agreement(actor, agreement_id, version)
        notices = node.agreement_notices(actor, agreement_id)
    if json_out:
        print_json({**record.to_json(), "notices": [n.to_json() for n in notices]})
        return
    for line in _describe(record) + _notice_lines(notices):
        out.print(line, markup=False)


@agreement_app.command("propose")
def propose(agreement_id: IdArg, version: VersionOpt = None, org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """Send a draft to every other party over the exchange (draft -> proposed)."""
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        record = node.propose_agreement(actor, agreement_id, version)
        _send_now(node, actor.org_id)
        record = node.agreement(actor, record.id, record.version)
        notices = node.agreement_notices(actor, record.id)
    others = [p for p in record.agreement.party_ids if p != record.org_id]
    _report(record, notices, json_out, f"Proposed {record.id} version {record.version} to {', '.join(others)}.")


@agreement_app.command("sign")
def sign(
    agreement_id: IdArg,
    as_: Annotated[str, typer.Option("--as", metavar="NAME",
                                     help="The data protection officer (a user with the dpo role) signing.")],
    version: VersionOpt = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign an agreement for the organisation with its key, for the named data protection officer."""
    with STATE.node() as node:
        org_id = node.resolve_org(org)
        operator = STATE.operator_name()
        dpo = node.dpo_actor(org_id, as_, operator=operator)
        record = node.sign_agreement(dpo, agreement_id, version, operator=operator)
        _send_now(node, org_id)
        record = node.agreement(dpo, record.id, record.version)
        notices = node.agreement_notices(dpo, record.id)
    done = f"Signed {record.id} version {record.version} for {org_id} as {as_}."
    _report(record, notices, json_out, done)


@agreement_app.command("revoke")
def revoke(
    agreement_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, in one line; every party sees it.")],
    version: VersionOpt = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke an agreement for every party (the version in force, unless --version)."""
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        record = node.revoke_agreement(actor, agreement_id, reason, version)
        _send_now(node, actor.org_id)
        record = node.agreement(actor, record.id, record.version)
        notices = node.agreement_notices(actor, record.id)
    _report(record, notices, json_out, f"Revoked {record.id} version {record.version}: {record.revoked_reason}")
