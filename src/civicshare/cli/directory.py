"""``directory`` commands: operate a federation directory, and trust directories others operate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicshare.canonical import canonical_json
from civicshare.cli.context import STATE, err, out, print_json, print_table, write_new_file
from civicshare.cli.org import OrgOpt
from civicshare.cli.partners import _read_card
from civicshare.errors import Conflict
from civicshare.exchange.card import key_text
from civicshare.exchange.directory import fingerprint
from civicshare.exchange.federation import TrustedDirectory

directory_app = typer.Typer(help="Federation directories: operate one, or trust those others operate.",
                            no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@directory_app.command("init")
def directory_init(
    name: Annotated[str, typer.Option("--name", help="The directory's name, e.g. 'Fenland Federation'.")],
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start operating a federation directory from this node: creates the operator's signing key."""
    with STATE.node() as node:
        operated = node.directory_init(STATE.operator(node, org), name)
    if json_out:
        print_json(operated.to_json())
        return
    out.print(f"This node now operates the directory {operated.name}.", markup=False)
    out.print(f"  operator key: {key_text(operated.operator_key)}", markup=False)
    out.print(f"  fingerprint:  {fingerprint(operated.operator_key)}", markup=False)
    err.print("Give members the fingerprint through a channel you trust, so they can check it when they "
              "first use the directory.", markup=False)


@directory_app.command("add")
def directory_add(
    card_file: Annotated[str, typer.Argument(metavar="CARD", help="The member's card file, or - for stdin.")],
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify an organisation's card and list it in the operated directory (from the next edition)."""
    data = _read_card(card_file)
    with STATE.node() as node:
        card = node.directory_add(STATE.operator(node, org), data)
    if json_out:
        print_json(card.to_body())
        return
    out.print(f"Listed {card.name} ({card.org_id}) in the directory; run 'directory publish' to publish it.",
              markup=False)


@directory_app.command("revoke")
def directory_revoke(
    member: Annotated[str, typer.Argument(metavar="ORG", help="The organisation id to revoke.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, in words partners will read.")] = "",
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke an organisation in the operated directory (from the next edition)."""
    with STATE.node() as node:
        revocation = node.directory_revoke(STATE.operator(node, org), member, reason)
    if json_out:
        print_json(revocation.to_json())
        return
    out.print(f"Revoked {revocation.org_id} in the directory; run 'directory publish' so partners learn of it.",
              markup=False)


@directory_app.command("publish")
def directory_publish(
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the edition to this new file.")]
    = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign the next edition of the operated directory; the node serves it at /directory.json."""
    if out_file is not None and (out_file.exists() or out_file.is_symlink()):
        raise Conflict(f"{out_file} already exists; choose another file name.")
    with STATE.node() as node:
        edition = node.directory_publish(STATE.operator(node, org))
        path = node.directory.published_path
    if out_file is not None:
        write_new_file(out_file, canonical_json(edition.document), mode=0o644)
    if json_out:
        print_json({**edition.summary(), "file": str(path)})
        return
    out.print(f"Published edition {edition.serial} of {edition.name}: {len(edition.members)} members, "
              f"{len(edition.revocations)} revoked. Served at /directory.json; written to {path}.", markup=False)


@directory_app.command("use")
def directory_use(
    source: Annotated[str, typer.Argument(metavar="URL|FILE", help="Where the directory is published.")],
    operator_key: Annotated[str | None, typer.Option(
        "--operator-key", help="Insist on this operator key (ed25519:...), as the operator told you.")] = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Trust a federation directory: its members become partners, its revocations are obeyed."""
    with STATE.node() as node:
        trusted, change = node.use_directory(STATE.operator(node, org), source, operator_key=operator_key)
    if json_out:
        print_json({**trusted.to_json(), "change": change})
        return
    if change == "new":
        out.print(f"{trusted.org_id} now trusts the directory {trusted.name} (edition {trusted.serial}).",
                  markup=False)
        out.print(f"  operator key: {key_text(trusted.operator_key)}", markup=False)
        out.print(f"  fingerprint:  {fingerprint(trusted.operator_key)}", markup=False)
        if operator_key is None:
            err.print("The operator key was pinned on first use: check the fingerprint with the directory's "
                      "operator. Later editions must be signed by this key.", markup=False)
    elif change == "newer":
        out.print(f"Accepted edition {trusted.serial} of {trusted.name}.", markup=False)
    else:
        out.print(f"{trusted.name} is already at edition {trusted.serial}.", markup=False)


def _row(d: TrustedDirectory) -> list[object]:
    data = d.to_json()
    return [d.name, d.serial, data["issued"], d.source, data["fetched"], d.last_error or ""]


@directory_app.command("list")
def directory_list(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """The federation directories this organisation trusts."""
    with STATE.node() as node:
        found = node.trusted_directories(STATE.operator(node, org))
    if json_out:
        print_json([d.to_json() for d in found])
        return
    print_table("Trusted directories", ["name", "serial", "issued", "source", "fetched", "last error"],
                [_row(d) for d in found])


@directory_app.command("show")
def directory_show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The directory's name.")],
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One trusted directory: its operator key, members and revocations."""
    with STATE.node() as node:
        trusted, edition = node.trusted_directory(STATE.operator(node, org), name)
    if json_out:
        print_json({**trusted.to_json(), "edition": edition.summary()})
        return
    data = trusted.to_json()
    for line in [f"{trusted.name} (edition {trusted.serial}, issued {data['issued']})",
                 f"  source:       {trusted.source}", f"  operator key: {data['operator_key']}",
                 f"  fingerprint:  {data['fingerprint']}", f"  fetched:      {data['fetched']}",
                 f"  last error:   {trusted.last_error or '(none)'}",
                 "  members:      " + (", ".join(sorted(edition.members)) or "(none)")]:
        out.print(line, markup=False)
    for revocation in sorted(edition.revocations.values(), key=lambda r: r.org_id):
        reason = f": {revocation.reason}" if revocation.reason else ""
        out.print(f"  revoked:      {revocation.org_id} on {revocation.to_json()['revoked']}{reason}", markup=False)


@directory_app.command("refresh")
def directory_refresh(json_out: JsonOpt = False) -> None:
    """Fetch every trusted directory again now (civicshare serve does this on its own)."""
    with STATE.node() as node:
        updated = node.refresh_directories()
    if json_out:
        print_json({"updated": updated})
        return
    out.print(("Newer editions accepted: " + ", ".join(updated)) if updated else "No newer editions.",
              markup=False)
