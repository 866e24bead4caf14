"""Holdings over HTTP: list, show, import, export, share and shred.

Uploads come as the raw request body, never as multipart: Starlette's ``UploadFile`` spools large
files to a plaintext temporary file, and nothing personal may touch the disk unencrypted. Instead

* a dataset is gathered in an anonymous in-memory file (``memfd_create``: RAM only, no name in any
  file system) that the core reads through ``/proc/self/fd/N``;
* a document is streamed through a pipe straight into the core's encryption, so it is never whole
  in memory either. If the upload is abandoned, the core sees an error instead of end of file, so a
  truncated document is never stored.

An export is written by the core into an in-memory file too, and streamed from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from civicshare.access import Actor
from civicshare.api.auth import ActorDep, NodeDep
from civicshare.crypto.atomicfile import write_all
from civicshare.errors import CivicshareError, TooLarge
from civicshare.holdings.store import DOCUMENT, MEDIA_TYPE_RE, PARQUET_MEDIA_TYPE, Holding
from civicshare.memfile import memory_file
from civicshare.node import Node
from civicshare.uploadpipe import PipeSource, interrupted, read_through

router = APIRouter(tags=["holdings"])

CHUNK = 1024 * 1024
# A mapping travels in the query string; a long one belongs in a file imported with the CLI.
MAX_MAPPING_QUERY = 32_000

EXPORT_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl",
    "parquet": PARQUET_MEDIA_TYPE,
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

FormatQuery = Annotated[str | None, Query(alias="format", description="csv, jsonl, parquet or xlsx")]
ClassificationQuery = Annotated[str, Query(description="OFFICIAL, or OFFICIAL-SENSITIVE (the handling caveat)")]


def _raw_body(*media_types: str) -> dict[str, Any]:
    """OpenAPI for an endpoint that takes a file as the whole request body."""
    schema = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media_types}}}


def _too_large(what: str, limit: int) -> TooLarge:
    return TooLarge(f"The {what} is larger than this node accepts ({limit:,} bytes); split it, or ask "
                    "the node operator to raise the limit.")


def _refuse_declared_length(request: Request, limit: int, what: str) -> None:
    """Refuse at once a body whose Content-Length is over the limit, before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(what, limit)


async def _body(request: Request, limit: int, what: str) -> AsyncIterator[bytes]:
    """The request body in chunks, refused as soon as more than ``limit`` bytes have arrived."""
    received = 0
    stream = request.stream()
    while True:
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except ClientDisconnect:
            raise interrupted() from None
        received += len(chunk)
        if received > limit:
            raise _too_large(what, limit)
        if chunk:
            yield chunk


def _attachment(filename: str) -> str:
    """A Content-Disposition header that cannot be broken by the name (RFC 6266 with RFC 8187)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\/' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# Reading ---------------------------------------------------------------------------------------


@router.get("/holdings")
def list_holdings(actor: ActorDep, node: NodeDep) -> dict[str, list[dict[str, Any]]]:
    """The holdings of the caller's organisation."""
    return {"holdings": [h.to_json() for h in node.list_holdings(actor)]}


@router.get("/holdings/{holding_id}")
def show_holding(holding_id: str, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    return node.holding(actor, holding_id).to_json()


@router.get("/holdings/{holding_id}/schema")
def holding_schema(holding_id: str, actor: ActorDep, node: NodeDep) -> JSONResponse:
    """A dataset's Frictionless Table Schema: what ``civicshare export`` writes beside the file.

    The fields of the dataset's schema where it has one, otherwise every column as a string field.
    An export of the dataset names this route in its ``Link`` header (rel ``describedby``).
    """
    return JSONResponse(node.holding_table_schema(actor, holding_id))


# Import ----------------------------------------------------------------------------------------

# What the import and the mapping suggestion both take: a table file as the raw body.
_TABLE_BODY = _raw_body("text/csv", "application/jsonl",
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/octet-stream")
TableFormatQuery = Annotated[str | None, Query(alias="format",
                                               description="csv, xlsx or jsonl; from the file name if left out")]
EncodingQuery = Annotated[str, Query(description="auto, utf-8, windows-1252 or latin-1")]
FilenameQuery = Annotated[str | None, Query(description="The file's own name, used in messages.")]


@router.post("/holdings/datasets", status_code=201, openapi_extra=_TABLE_BODY)
async def import_dataset(
    request: Request, actor: ActorDep, node: NodeDep,
    name: Annotated[str, Query(description="The dataset's name in this organisation.")],
    fmt: TableFormatQuery = None,
    encoding: EncodingQuery = "auto",
    filename: FilenameQuery = None,
    classification: ClassificationQuery = "OFFICIAL",
    schema: Annotated[str | None, Query(description="The schema the rows follow; without a mapping the "
                                        "columns must be its field names.")] = None,
    mapping: Annotated[str | None, Query(max_length=MAX_MAPPING_QUERY, description=(
        "A mapping (YAML or JSON text) from the file's columns to the schema's fields."))] = None,
    policy: Annotated[str, Query(description="What to do with invalid rows: flag, quarantine (a second "
                                 "holding) or reject (refuse the file).")] = "flag",
) -> JSONResponse:
    """Import a dataset sent as the raw request body (not multipart). The response is the holding,
    with ``quarantine``: the holding of the invalid rows under the quarantine policy, else null."""
    limit = request.app.state.limits.max_dataset_bytes
    _refuse_declared_length(request, limit, "dataset")
    with memory_file("civicshare-upload") as (fd, path):
        async for chunk in _body(request, limit, "dataset"):
            write_all(fd, chunk)  # a copy into RAM: quick enough for the event loop
        # The in-memory file has no name: the core tells the format from the label.
        holding = await run_in_threadpool(node.import_dataset, actor, path, name, fmt=fmt,
                                          encoding=encoding, label=filename or name,
                                          classification=classification, schema=schema, mapping=mapping,
                                          mapping_label="the mapping", policy=policy)
    quarantine = node.quarantine_of(actor, holding.id)
    body = holding.to_json()
    body["quarantine"] = quarantine.to_json() if quarantine is not None else None
    return JSONResponse(body, status_code=201)


@router.post("/mappings/suggest", openapi_extra=_TABLE_BODY)
async def suggest_mapping(
    request: Request, actor: ActorDep, node: NodeDep,
    schema: Annotated[str, Query(description="The schema to map into (GET /v1/schemas lists them).")],
    fmt: TableFormatQuery = None,
    encoding: EncodingQuery = "auto",
    filename: FilenameQuery = None,
) -> dict[str, Any]:
    """A mapping (YAML text) from the export sent as the raw body to ``schema``, for a person to review:
    every guess is marked REVIEW. Only the headers and first rows are read, in memory; nothing is stored."""
    limit = request.app.state.limits.max_dataset_bytes
    _refuse_declared_length(request, limit, "dataset")
    with memory_file("civicshare-suggest") as (fd, path):
        async for chunk in _body(request, limit, "dataset"):
            write_all(fd, chunk)
        text = await run_in_threadpool(node.suggest_mapping, actor, path, schema, fmt=fmt, encoding=encoding,
                                       label=filename or "the file")
    return {"version": 1, "schema": schema, "mapping": text}


def _import_from_pipe(node: Node, actor: Actor, source: PipeSource, filename: str,
                      title: str | None, media_type: str | None, classification: str) -> Holding:
    return read_through(lambda reader: node.import_document(actor, reader, filename, title=title,
                                                            media_type=media_type, classification=classification),
                        source)


@router.post("/holdings/documents", status_code=201, openapi_extra=_raw_body("application/octet-stream"))
async def import_document(
    request: Request, actor: ActorDep, node: NodeDep,
    filename: Annotated[str, Query(description="The document's file name, such as letter.pdf.")],
    title: Annotated[str | None, Query(description="A name for the holding; the file name if left out.")]
    = None,
    media_type: Annotated[str | None, Query(description="Guessed from the file name if left out.")] = None,
    classification: ClassificationQuery = "OFFICIAL",
) -> JSONResponse:
    """Import a document sent as the raw request body; it is encrypted as it arrives."""
    limit = request.app.state.limits.max_document_bytes
    _refuse_declared_length(request, limit, "document")
    r, w = os.pipe()
    os.set_blocking(w, False)  # the event loop waits for room in the pipe; no thread blocks on it
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, CHUNK)  # fewer wake-ups; the default 64 KiB works too
    source = PipeSource(r)
    # The core reads in a worker thread of its own pool, so that many slow uploads cannot take every
    # thread the other endpoints need. It always runs to the end and closes ``source``.
    worker = asyncio.ensure_future(anyio.to_thread.run_sync(
        _import_from_pipe, node, actor, source, filename, title, media_type, classification,
        limiter=request.app.state.document_imports))
    try:
        await _feed(_body(request, limit, "document"), w, source)
    except BaseException as exc:
        if isinstance(exc, CivicshareError):
            source.failure = exc  # what the core reads instead of end of file
        os.close(w)
        with contextlib.suppress(BaseException):
            await worker
        raise
    os.close(w)
    holding = await worker
    return JSONResponse(holding.to_json(), status_code=201)


async def _feed(chunks: AsyncIterator[bytes], w: int, source: PipeSource) -> None:
    """Copy the body into the (non-blocking) write end of the pipe."""
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    view = view[os.write(w, view):]
                except BlockingIOError:
                    await anyio.wait_writable(w)
    except BrokenPipeError:
        return  # the core stopped reading: it failed, and awaiting it raises why
    source.complete = True


# Export and shred ------------------------------------------------------------------------------


def _read_all(body: io.FileIO) -> Iterator[bytes]:
    with body:
        while chunk := body.read(CHUNK):
            yield chunk


@router.get("/holdings/{holding_id}/export")
def export_holding(holding_id: str, actor: ActorDep, node: NodeDep, fmt: FormatQuery = None
                   ) -> StreamingResponse:
    """The holding in plaintext: a dataset as csv (default), jsonl, parquet or xlsx; a document as sent."""
    with memory_file("civicshare-export") as (fd, path):
        holding, _rows = node.export(actor, holding_id, path, fmt, overwrite=True)
        size = os.fstat(fd).st_size
        # A second descriptor keeps the in-memory file alive once this block closes the first; as a
        # file object it is closed when streaming ends, or when the response is dropped unsent.
        body = io.FileIO(os.dup(fd), "rb")
    if holding.kind == DOCUMENT:
        # The type the uploader gave, if it is one; never a string that could break the header.
        valid = MEDIA_TYPE_RE.match(holding.media_type)
        media_type, filename = holding.media_type if valid else "application/octet-stream", holding.name
    else:
        fmt = (fmt or "csv").lower()  # the core has checked it, and chose csv when it was left out
        media_type, filename = EXPORT_MEDIA_TYPES[fmt], f"{holding.name}.{fmt}"
    headers = {
        # Set as given: Starlette would append "charset=utf-8" to any text/* type, true or not.
        "Content-Type": media_type,
        "Content-Length": str(size),
        "Content-Disposition": _attachment(filename),
        "X-Content-Type-Options": "nosniff",
    }
    if holding.kind != DOCUMENT:
        headers["Link"] = f'</v1/holdings/{holding.id}/schema>; rel="describedby"; type="application/json"'
    return StreamingResponse(_read_all(body), headers=headers, background=BackgroundTask(body.close))


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="The partner organisation to share the holding with.")
    agreement: str | None = Field(None, description="Required: the id of the active data sharing agreement "
                                                    "the holding is shared under.")


@router.post("/holdings/{holding_id}/share", status_code=201)
def share_holding(holding_id: str, request: ShareRequest, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """Seal the holding for a partner under an agreement and queue it; the server delivers it.

    Refused (403 agreement_refused, with the rule and the reason) unless the agreement is active, names
    the partner and covers the holding; a dataset carries only the agreed fields. The answer is the
    new ledger entry (state queued); follow it at GET /v1/transfers/{id}.
    """
    transfer = node.share(actor, holding_id, request.to, agreement=request.agreement, ask_partner=True)
    return transfer.to_json(now=node.clock())


@router.post("/holdings/{holding_id}/shred")
def shred_holding(holding_id: str, actor: ActorDep, node: NodeDep) -> dict[str, Any]:
    """Destroy the holding's data key: its contents can never be read again, by anyone."""
    return node.shred(actor, holding_id).to_json()
