"""``civicshare mapping suggest FILE --schema S [--out M.yaml]``: a mapping for a person to review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicshare.cli.context import STATE, err, out
from civicshare.cli.org import OrgOpt
from civicshare.errors import Conflict

mapping_app = typer.Typer(help="Mappings from council exports to schemas.", no_args_is_help=True)


@mapping_app.command("suggest")
def suggest(
    file: Annotated[Path, typer.Argument(help="The export to map.", exists=True, dir_okay=False, readable=True)],
    schema: Annotated[str, typer.Option("--schema", help="The schema to map into (see `schema list`).")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the mapping here (it must not exist yet) "
                                                  "instead of printing it.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, xlsx or jsonl (default: by extension).")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="auto, utf-8, windows-1252 or latin-1.")] = "auto",
    org: OrgOpt = None,
) -> None:
    """Propose a mapping from FILE's headers and its first 1,000 rows; every guess is marked REVIEW."""
    if out_file is not None and out_file.exists():
        raise Conflict(f"{out_file} already exists; choose another file name.")
    with STATE.node() as node:
        text = node.suggest_mapping(STATE.operator(node, org), file, schema, fmt=fmt, encoding=encoding,
                                    label=file.name)
    if out_file is None:
        out.print(text, markup=False, end="", soft_wrap=True, highlight=False)
        return
    with out_file.open("x", encoding="utf-8") as fh:
        fh.write(text)
    err.print(f"Wrote a suggested mapping to {out_file}; review every line marked REVIEW before importing.",
              markup=False)
