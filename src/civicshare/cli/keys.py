"""``keys`` commands: the key register, KEK rotation, and the age identity for the standard tool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicshare.cli.context import STATE, err, out, print_json, print_table
from civicshare.cli.org import OrgOpt
from civicshare.clock import iso
from civicshare.errors import UsageError

keys_app = typer.Typer(help="The key register and key custody.", no_args_is_help=True)


@keys_app.command("list")
def keys_list(
    org: OrgOpt = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every key of the organisation: what for, which algorithm, where it is held, since when."""
    with STATE.node() as node:
        records = node.key_register(STATE.operator(node, org))
        if json_out:
            print_json([k.to_json() for k in records])
            return
        print_table(
            f"Key register of {records[0].org_id if records else org}",
            ["id", "purpose", "algorithm", "custody", "location", "created", "last rotated", "state"],
            [[k.id, k.purpose + (f" ({k.holding_id})" if k.holding_id else ""), k.algorithm, k.custody,
              k.location, iso(k.created_at), iso(k.rotated_at), k.state] for k in records],
        )


@keys_app.command("rotate")
def keys_rotate(
    kek: Annotated[bool, typer.Option("--kek", help="Rotate the key-encryption key.")] = False,
    org: OrgOpt = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make a new KEK, re-wrap every data key under it and destroy the old one."""
    if not kek:
        raise UsageError("Say which key to rotate: --kek.")
    with STATE.node() as node:
        new_id, count = node.rotate_kek(STATE.operator(node, org))
        if json_out:
            print_json({"kek": new_id, "rewrapped": count})
        else:
            out.print(f"New KEK {new_id}; {count} data keys re-wrapped; the old KEK was destroyed.")


@keys_app.command("export")
def keys_export(
    out_file: Annotated[Path, typer.Option("--out", help="File to write (created with mode 0600).")],
    age_identity: Annotated[bool, typer.Option("--age-identity",
                                               help="Export the age identity, for the standard age tool.")] = False,
    org: OrgOpt = None,
) -> None:
    """Write the organisation's age identity so a package can be opened with `age -d -i FILE`."""
    if not age_identity:
        raise UsageError("Say which key to export: --age-identity.")
    with STATE.node() as node:
        key_id = node.export_age_identity(STATE.operator(node, org), out_file)
        out.print(f"Wrote age identity {key_id} to {out_file}.", markup=False)
        err.print(f"Warning: {out_file} can open every package sealed to this organisation, outside civicshare "
                  "and without the passphrase. Keep it as safe as the keystore, delete it when done; the export "
                  "is in the audit log.", markup=False)
