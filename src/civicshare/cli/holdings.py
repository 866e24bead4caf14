"""``import``, ``holdings``, ``export`` and ``shred`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicshare.cli.context import STATE, err, out, print_json, print_table, size_words
from civicshare.cli.org import OrgOpt
from civicshare.clock import iso
from civicshare.errors import UsageError
from civicshare.holdings.exporting import descriptor_path
from civicshare.holdings.store import Holding

holdings_app = typer.Typer(help="What the organisation holds.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command("export")(export)
    app.command("shred")(shred)


def _describe(h: Holding) -> None:
    rows: list[tuple[str, object]] = [
        ("id", h.id), ("organisation", h.org_id), ("kind", h.kind), ("name", h.name),
        ("media type", h.media_type), ("classification", h.classification), ("size", size_words(h.size)),
    ]
    if h.kind == "document":
        rows.append(("sha256", h.sha256 or "not recorded (imported before civicshare recorded fixity)"))
    if h.kind == "dataset":
        rows += [("rows", h.rows), ("columns", ", ".join(h.columns or [])),
                 ("source", f"{h.format}, {h.encoding}")]
        rows += [(label, value) for label, value in (
            ("schema", h.schema), ("quality score", None if h.quality_score is None else f"{h.quality_score:g}"),
            ("quarantine of", h.quarantine_of)) if value is not None]
    rows += [("data key", h.key_id), ("created", f"{iso(h.created_at)} by {h.created_by}")]
    if h.shredded:
        rows.append(("shredded", f"{iso(h.shredded_at)} by {h.shredded_by}"))
    for label, value in rows:
        out.print(f"{label:>13}: {value}", markup=False)


def import_(
    file: Annotated[Path, typer.Argument(help="The file to import.", exists=True, dir_okay=False,
                                         readable=True)],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Import rows as a dataset with this name.")] = None,
    document: Annotated[bool, typer.Option("--document", help="Store the file as a document.")] = False,
    title: Annotated[str | None, typer.Option("--title", help="Document title (default: the file name).")] = None,
    media_type: Annotated[str | None, typer.Option("--media-type", help="Document media type.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, xlsx or jsonl (default: by extension).")] = None,
    encoding: Annotated[str, typer.Option("--encoding",
                                          help="auto, utf-8, windows-1252 or latin-1.")] = "auto",
    classification: Annotated[str, typer.Option("--classification", help="OFFICIAL, or OFFICIAL-SENSITIVE for "
                                                "data under the SENSITIVE handling caveat; a share needs an "
                                                "agreement that allows it.")] = "OFFICIAL",
    schema: Annotated[str | None, typer.Option("--schema", help="The schema the rows follow (see `schema list`); "
                                               "without --mapping the columns must be its field names.")] = None,
    mapping: Annotated[Path | None, typer.Option("--mapping", help="A YAML mapping from the file's columns to the "
                                                 "schema's fields (see `mapping suggest`).", exists=True,
                                                 dir_okay=False, readable=True)] = None,
    policy: Annotated[str, typer.Option("--policy", help="What to do with invalid rows: flag (import all, the "
                                        "quality report flags them), quarantine (a second holding) or reject "
                                        "(refuse the file).")] = "flag",
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import FILE as an encrypted holding. A bad file imports nothing and every problem is listed."""
    if (dataset is None) == (not document):
        raise UsageError("Say what FILE is: --dataset NAME for rows, or --document for a file kept whole.")
    if document and (schema or mapping or policy != "flag"):
        raise UsageError("--schema, --mapping and --policy are for datasets; a document is kept whole.")
    quarantine: Holding | None = None
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        if dataset is not None:
            with err.status(f"Importing {file.name} ..."):
                holding = node.import_dataset(actor, file, dataset, fmt=fmt, encoding=encoding, label=str(file),
                                              classification=classification, schema=schema,
                                              mapping=mapping.read_bytes() if mapping else None,
                                              mapping_label=str(mapping) if mapping else None, policy=policy)
            quarantine = node.quarantine_of(actor, holding.id)
        else:
            with file.open("rb") as fh, err.status(f"Encrypting {file.name} ..."):
                holding = node.import_document(actor, fh, file.name, title=title, media_type=media_type,
                                               classification=classification)
        if json_out:
            shown = holding.to_json()
            if holding.kind == "dataset":
                shown["quarantine"] = quarantine.to_json() if quarantine is not None else None
            print_json(shown)
        elif holding.kind == "dataset":
            into = f" ({holding.schema})" if holding.schema else ""
            out.print(f"Imported {holding.rows} rows into dataset {holding.name!r}{into} as {holding.id}, "
                      f"encrypted under data key {holding.key_id}.", markup=False)
            if holding.quality_score is not None:
                out.print(f"Quality score {holding.quality_score:g} of 100; see `civicshare quality {holding.id}`.",
                          markup=False)
            if quarantine is not None:
                moved = "1 invalid row" if quarantine.rows == 1 else f"{quarantine.rows} invalid rows"
                out.print(f"Quarantined {moved} into {quarantine.name!r} as {quarantine.id}.", markup=False)
        else:
            out.print(f"Stored document {holding.name!r} ({size_words(holding.size)}) as {holding.id}, "
                      f"encrypted under data key {holding.key_id}.", markup=False)


@holdings_app.command("list")
def holdings_list(org: OrgOpt = None, json_out: JsonOpt = False) -> None:
    """Every holding of the organisation, shredded ones included."""
    with STATE.node() as node:
        items = node.list_holdings(STATE.operator(node, org))
        if json_out:
            print_json([h.to_json() for h in items])
            return
        print_table("Holdings", ["id", "kind", "name", "classification", "rows", "size", "created", "state"],
                    [[h.id, h.kind, h.name, h.classification, h.rows, size_words(h.size), iso(h.created_at),
                      f"shredded {iso(h.shredded_at)}" if h.shredded else "held"] for h in items])


@holdings_app.command("show")
def holdings_show(holding_id: Annotated[str, typer.Argument(metavar="ID")], org: OrgOpt = None,
                  json_out: JsonOpt = False) -> None:
    """One holding's details."""
    with STATE.node() as node:
        holding = node.holding(STATE.operator(node, org), holding_id)
        if json_out:
            print_json(holding.to_json())
        else:
            _describe(holding)


def export(
    holding_id: Annotated[str, typer.Argument(metavar="ID")],
    out_file: Annotated[Path, typer.Option("--out", help="File to write; it (and, for a dataset, "
                                                         "FILE.schema.json) must not exist yet.")],
    fmt: Annotated[str | None, typer.Option("--format", help="csv, jsonl, parquet or xlsx (datasets).")] = None,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Decrypt a holding to a file. CSV exports neutralise spreadsheet formulas.

    A dataset's Frictionless Table Schema is written beside it, as FILE.schema.json.
    """
    with STATE.node() as node:
        holding, rows = node.export(STATE.operator(node, org), holding_id, out_file, fmt)
        described = descriptor_path(out_file) if rows is not None else None
        if json_out:
            print_json({"holding": holding.id, "out": str(out_file), "rows": rows,
                        "schema": None if described is None else str(described)})
        elif rows is None:
            out.print(f"Wrote document {holding.name!r} to {out_file}.", markup=False)
        else:
            out.print(f"Wrote {rows} rows of {holding.name!r} to {out_file}, described in {described}.",
                      markup=False)


def shred(
    holding_id: Annotated[str, typer.Argument(metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    org: OrgOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Destroy a holding for good by destroying its data key (crypto-shredding)."""
    if not yes:
        raise UsageError("Shredding cannot be undone; add --yes to confirm.")
    with STATE.node() as node:
        holding = node.shred(STATE.operator(node, org), holding_id)
        if json_out:
            print_json(holding.to_json())
        else:
            out.print(f"Shredded {holding.id} ({holding.name}): its data key {holding.key_id} is destroyed "
                      "and its contents can no longer be read.", markup=False)
