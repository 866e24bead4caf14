"""``card`` and ``partner`` commands: this organisation's signed card, and the partners it has pinned."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from civicshare.cli.context import STATE, err, out, print_json, print_table, write_new_file
from civicshare.cli.org import OrgOpt
from civicshare.errors import Conflict, UsageError
from civicshare.exchange.card import MAX_CARD_BYTES
from civicshare.exchange.partners import Partner

partner_app = typer.Typer(help="Partners: organisations whose cards this organisation trusts.",
                          no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(app: typer.Typer) -> None:
    app.command("card")(card)


def _card_text(document: dict[str, Any]) -> str:
    # Indented for people; the signature covers the body's canonical form, so layout does not matter.
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def card(
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the card to this new file (mode 0644).")]
    = None,
    org: OrgOpt = None,
) -> None:
    """This organisation's signed card, valid for a year: hand it to partners so they can pin you."""
    if out_file is not None and (out_file.exists() or out_file.is_symlink()):
        raise Conflict(f"{out_file} already exists; choose another file name.")
    with STATE.node() as node:
        document = node.card(STATE.operator(node, org))
    text = _card_text(document)
    if out_file is None:
        # Straight to stdout, so `civicshare card > FILE` saves exactly the card.
        sys.stdout.write(text)
        return
    write_new_file(out_file, text, mode=0o644)
    body = document["body"]
    out.print(f"Wrote the card of {body['name']} ({body['org_id']}) to {out_file}, valid until "
              f"{body['valid_until']}.", markup=False)
    err.print(f"Its signing key, for partners to confirm with you: {body['signing_key']}", markup=False)


def _read_card(path: str) -> bytes:
    """The card file's bytes, or stdin's for '-'; at most a little more than any card can be."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(MAX_CARD_BYTES + 1)
        with open(path, "rb") as fh:
            return fh.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"There is no card file {path}.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read the card file {path}: {exc.strerror}.") from None


def _describe(p: Partner) -> list[str]:
    return [f"{p.name} ({p.partner_id})", f"  endpoint:           {p.endpoint or '(none)'}",
            f"  signing key:        {p.to_json()['signing_key']}", f"  age recipient:      {p.age_recipient}",
            f"  audit verifier key: {p.audit_verifier_key}",
            f"  card valid until:   {p.to_json()['valid_until']}",
            f"  pinned:             {p.to_json()['added']} by {p.added_by}"]


@partner_app.command("add")
def partner_add(
    card_file: Annotated[str, typer.Argument(metavar="CARD_FILE", help="The partner's card file, or - for stdin.")],
    replace: Annotated[bool, typer.Option("--replace",
                                          help="Accept a new signing key for a partner already pinned "
                                               "(check it with them first).")] = False,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a partner's card and pin it. Check the signing key with the partner before you do."""
    data = _read_card(card_file)
    with STATE.node() as node:
        partner = node.add_partner(STATE.operator(node, org), data, replace=replace)
    if json_out:
        print_json(partner.to_json())
        return
    out.print(f"Pinned {partner.name} ({partner.partner_id}) as a partner of {partner.org_id}.", markup=False)
    for line in _describe(partner)[1:]:
        out.print(line, markup=False)


@partner_app.command("list")
def partner_list(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """The partners this organisation has pinned."""
    with STATE.node() as node:
        found = node.partners(STATE.operator(node, org))
    if json_out:
        print_json([p.to_json() for p in found])
        return
    print_table("Partners", ["id", "name", "endpoint", "signing key", "valid until", "source"],
                [[p.partner_id, p.name, p.endpoint, p.to_json()["signing_key"], p.to_json()["valid_until"],
                  p.source] for p in found])


@partner_app.command("show")
def partner_show(
    partner: Annotated[str, typer.Argument(metavar="ORG", help="The partner's organisation id.")],
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One partner: its keys, endpoint, card validity and who pinned it (--json includes the card)."""
    with STATE.node() as node:
        found = node.partner(STATE.operator(node, org), partner)
    if json_out:
        print_json(found.to_json(with_card=True))
        return
    for line in _describe(found):
        out.print(line, markup=False)
