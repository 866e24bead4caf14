"""``civicshare schema list|show|export``: the published schemas.

These need no passphrase and no database: the shipped schemas are always there, and with a node home
(--home or CIVICSHARE_HOME) the organisations' own schemas in ``<home>/schemas`` are included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from civicshare.cli.context import STATE, out, print_json, print_table, write_new_file
from civicshare.config import Layout
from civicshare.errors import UsageError
from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.model import Schema

EXPORT_FORMATS = ("table-schema", "json-schema")

schema_app = typer.Typer(help="The published schemas datasets follow.", no_args_is_help=True)


def catalog() -> SchemaCatalog:
    """The shipped schemas, plus the home's own when a home is given."""
    if STATE.home is None:
        return SchemaCatalog(None)
    return SchemaCatalog(Layout(STATE.home.resolve()).schemas_dir)


def export_body(schema: Schema, fmt: str) -> dict[str, Any]:
    if fmt == "table-schema":
        return schema.to_table_schema()
    if fmt == "json-schema":
        return schema.to_json_schema()
    raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")


@schema_app.command("list")
def list_schemas(
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """Every schema this node knows: shipped with civicshare, then the organisations' own."""
    schemas = catalog().list()
    if json_out:
        print_json([s.summary() for s in schemas])
        return
    print_table("Schemas", ["name", "version", "title", "fields", "source"],
                [[s.name, s.version, s.title, len(s.fields), s.source] for s in schemas])


@schema_app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A schema name, e.g. person (or person@1.0.0).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the schema as JSON.")] = False,
) -> None:
    """A schema's fields, what each must hold, and the identifiers checked for duplicates and consistency."""
    schema = catalog().get(name)
    if json_out:
        print_json(schema.to_json())
        return
    out.print(f"{schema.title} ({schema.key}, {schema.source}): {schema.description}", markup=False)
    print_table("Fields", ["field", "type", "required", "check", "description"],
                [[f.name, f.type, "yes" if f.required else "", f.validator or "", f.description]
                 for f in schema.fields])
    if schema.identifiers:
        out.print("Identifiers (should be unique): " + ", ".join(schema.identifiers), markup=False)
    for identifier, dependent in schema.consistency:
        out.print(f"Consistency: one {identifier} should have one {dependent}", markup=False)


@schema_app.command("export")
def export(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A schema name, e.g. person.")],
    fmt: Annotated[str, typer.Option("--format", help="table-schema (Frictionless) or json-schema "
                                                      "(draft 2020-12, one row).")] = "table-schema",
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE",
                                                  help="Write here (it must not exist yet) instead of printing.")]
    = None,
) -> None:
    """Publish a schema as Frictionless Table Schema or JSON Schema, for partners and other tools."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    schema = catalog().get(name)
    text = json.dumps(export_body(schema, fmt), indent=2, ensure_ascii=False) + "\n"
    if out_file is None:
        typer.echo(text, nl=False)
        return
    write_new_file(out_file, text, mode=0o644)
    out.print(f"Wrote {schema.key} as {fmt} to {out_file}", markup=False)
