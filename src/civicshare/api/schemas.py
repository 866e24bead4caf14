"""The published schemas over HTTP: the list, and one schema as civicshare JSON, Table Schema or JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicshare.api.auth import ActorDep, NodeDep
from civicshare.errors import UsageError

router = APIRouter(tags=["schemas"])

FORMATS = ("table-schema", "json-schema", "civicshare")


@router.get("/schemas")
def list_schemas(actor: ActorDep, node: NodeDep) -> list[dict[str, Any]]:
    """Every schema the node knows: shipped with civicshare, then the organisations' own."""
    return [schema.summary() for schema in node.schemas.list()]


@router.get("/schemas/{name}")
def get_schema(
    name: str, actor: ActorDep, node: NodeDep,
    fmt: Annotated[str, Query(alias="format", description="table-schema (the default), json-schema or civicshare "
                                                          "(what `schema show --json` prints)")] = "table-schema",
) -> dict[str, Any]:
    """One schema, published as Frictionless Table Schema (the default) or JSON Schema, or as civicshare JSON."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown schema format {fmt!r}: choose {', '.join(FORMATS)}.")
    schema = node.schemas.get(name)
    if fmt == "json-schema":
        return schema.to_json_schema()
    if fmt == "civicshare":
        return schema.to_json()
    return schema.to_table_schema()
