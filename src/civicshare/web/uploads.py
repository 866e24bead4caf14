"""Multipart form uploads for the web pages, read as they stream in and never written to disk in plaintext.

Starlette's ``UploadFile`` spools large files to a plaintext temporary file, so the web pages never use
it. Instead python-multipart's streaming ``MultipartParser`` splits the request body as it arrives and
each file part goes to a sink, as in the API (civicshare.api.holdings):

* a dataset, or a mapping, goes into an anonymous in-memory file (``memory_file``: RAM only, no name
  in any file system) that the core reads through ``/proc/self/fd/N``;
* a document is streamed through a pipe straight into the core's encryption (civicshare.web.streaming);
  if the upload is abandoned or refused, the core reads an error instead of end of file, so nothing is stored.

The CSRF token must come before the first file in the form (browsers send fields in the order of the
page), so that no file is read before the form is known to come from civicshare. A document's other
fields (its title, classification) come before it too: the core needs them when the file starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from civicshare.crypto.atomicfile import write_all
from civicshare.errors import Problem, TooLarge, UsageError
from civicshare.memfile import memory_file
from civicshare.uploadpipe import interrupted
from civicshare.web.deps import WebSession, check_csrf, read_form

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MiB = 1024 * 1024
CHUNK = MiB
# All the text fields of one form together (a mapping reviewed in a text area is the largest).
TEXT_LIMIT = MiB
# Default limits when the app was created without the API's (tests of the web app alone).
DEFAULT_DATASET_BYTES = 512 * MiB
DEFAULT_DOCUMENT_BYTES = 2048 * MiB


def size_words(limit: int) -> str:
    """A limit as people say it: 512 MB, 1.5 MB, 900 KB."""
    if limit >= MiB:
        value, unit = limit / MiB, "MB"
    elif limit >= 1024:
        value, unit = limit / 1024, "KB"
    else:
        return f"{limit} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def too_large(what: str, limit: int, field_name: str | None = None) -> TooLarge:
    message = (f"The selected {what} must be smaller than {size_words(limit)}: this node does not accept "
               "larger ones. Split it, or ask the node operator to raise the limit.")
    return TooLarge(message, problems=[Problem(message, field=field_name)])


def limits(request: Request) -> tuple[int, int]:
    """The largest dataset and document this node accepts: the API's limits, shared with the web app."""
    found = getattr(request.app.state, "limits", None)
    if found is None:
        return DEFAULT_DATASET_BYTES, DEFAULT_DOCUMENT_BYTES
    return int(found.max_dataset_bytes), int(found.max_document_bytes)


@dataclass
class UploadedFile:
    """One file of a form: what the browser said of it, how much arrived, and (in memory) where it is."""

    field: str
    filename: str
    content_type: str
    size: int = 0
    path: Path | None = None  # the in-memory file, for datasets and mappings


class Sink:
    """Where one file part goes. ``end`` is called when the part is complete, ``fail`` when it is not."""

    def __init__(self, file: UploadedFile, limit: int, what: str) -> None:
        self.file, self.limit, self.what = file, limit, what

    async def write(self, data: bytes) -> None:
        self.file.size += len(data)
        if self.file.size > self.limit:
            raise too_large(self.what, self.limit, self.file.field)
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        return None

    async def fail(self, exc: BaseException) -> None:
        return None


class _Discard(Sink):
    """A file input left empty (the browser sends a part with no name and no data), or a file declined."""

    async def _write(self, data: bytes) -> None:
        return None


class _MemorySink(Sink):
    def __init__(self, file: UploadedFile, limit: int, what: str, fd: int) -> None:
        super().__init__(file, limit, what)
        self.fd = fd

    async def _write(self, data: bytes) -> None:
        write_all(self.fd, data)  # a copy into RAM: quick enough for the event loop


class _Events:
    """The parser's callbacks, queued: the parser is synchronous, the sinks are not."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.headers: dict[str, str] = {}
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        def header_field(data: bytes, start: int, end: int) -> None:
            self._name += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def header_end() -> None:
            self.headers[self._name.decode("latin-1").lower()] = self._value.decode("latin-1")
            self._name, self._value = b"", b""

        def headers_finished() -> None:
            self.items.append(("begin", self.headers))
            self.headers = {}

        def part_data(data: bytes, start: int, end: int) -> None:
            self.items.append(("data", bytes(data[start:end])))

        return {"on_header_field": header_field, "on_header_value": header_value, "on_header_end": header_end,
                "on_headers_finished": headers_finished, "on_part_data": part_data,
                "on_part_end": lambda: self.items.append(("end", None)),
                "on_end": lambda: self.items.append(("done", None))}

    def drain(self) -> list[tuple[str, Any]]:
        items, self.items = self.items, []
        return items


OpenFile = Callable[[UploadedFile, Mapping[str, str]], Sink | None]


class MultipartForm:
    """Reads one multipart body, text fields into ``fields``, files into the sinks ``open_file`` gives."""

    def __init__(self, request: Request, session: WebSession, open_file: OpenFile, limit: int,
                 refusal: Callable[[], TooLarge]) -> None:
        self.request, self.session, self.open_file, self.limit = request, session, open_file, limit
        self.refusal = refusal  # the words for a body over ``limit``: the main file's limit, by its field
        self.fields: dict[str, str] = {}
        self.checked = False
        self._text = 0
        self._name: str | None = None
        self._buffer: bytearray | None = None
        self._sink: Sink | None = None

    async def _boundary(self) -> bytes:
        ctype, options = parse_options_header(self.request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            # Any other body is a short form at most: a forged one is refused as forged, like every form.
            self.fields = dict(await read_form(self.request))
            await self._check_csrf()
            raise UsageError("This form must be sent as multipart/form-data; send it from the page.")
        return boundary

    async def read(self) -> dict[str, str]:
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise self.refusal()  # refused before any of it is read
        events = _Events()
        parser = MultipartParser(await self._boundary(), cast("MultipartCallbacks", events.callbacks()))
        done, received = False, 0
        try:
            stream = self.request.stream()
            while not done:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except ClientDisconnect:
                    raise interrupted() from None
                received += len(chunk)
                if received > self.limit:
                    raise self.refusal()
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise UsageError("The form could not be read: it is not well-formed multipart data.") from None
                for kind, value in events.drain():
                    done = await self._event(kind, value) or done
            if not done:
                raise interrupted()  # the body ended before the form did
        except BaseException as exc:
            if self._sink is not None:
                await self._sink.fail(exc)  # a document half-read must not be stored
            raise
        if not self.checked:
            await self._check_csrf()
        return self.fields

    async def _check_csrf(self) -> None:
        # A refusal is audited, a blocking database write: run in a thread.
        await run_in_threadpool(check_csrf, self.request, self.session, self.fields.get("csrf_token"))
        self.checked = True

    async def _event(self, kind: str, value: Any) -> bool:
        if kind == "begin":
            await self._begin(value)
        elif kind == "data":
            if self._sink is not None:
                await self._sink.write(value)
            elif self._buffer is not None:
                self._text += len(value)
                if self._text > TEXT_LIMIT:
                    raise TooLarge(f"The text in this form is longer than {size_words(TEXT_LIMIT)}; shorten it.")
                self._buffer += value
        elif kind == "end":
            if self._sink is not None:
                sink, self._sink = self._sink, None
                await sink.end()
            elif self._buffer is not None and self._name is not None:
                try:
                    self.fields[self._name] = self._buffer.decode("utf-8")
                except UnicodeDecodeError:
                    raise UsageError(f"The form field {self._name!r} is not UTF-8 text.") from None
            self._name, self._buffer = None, None
        return kind == "done"

    async def _begin(self, headers: dict[str, str]) -> None:
        _kind, options = parse_options_header(headers.get("content-disposition"))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._name = name
        if filename is None:
            self._buffer = bytearray()
            return
        if not self.checked:
            # No file is read before the form is known to come from civicshare.
            await self._check_csrf()
        file = UploadedFile(name, Path(filename.decode("utf-8", "replace")).name,
                            headers.get("content-type", "application/octet-stream"))
        if not file.filename:
            self._sink = _Discard(file, TEXT_LIMIT, "empty file")
            return
        # A declined file is read to its end and dropped, so the browser gets the page that says why.
        self._sink = self.open_file(file, self.fields) or _Discard(file, self.limit, "file")


@dataclass
class MemoryForm:
    """A form whose files are in memory: ``files`` holds those chosen, by field name."""

    fields: dict[str, str]
    files: dict[str, UploadedFile] = field(default_factory=dict)


@asynccontextmanager
async def memory_form(request: Request, session: WebSession,
                      files: Mapping[str, tuple[int, str]]) -> AsyncIterator[MemoryForm]:
    """Read a form whose ``files`` (field name -> (largest size, what it is in words)) go to in-memory
    files, alive until the block ends. Any other file field is refused."""
    with ExitStack() as stack:
        chosen: dict[str, UploadedFile] = {}

        def open_file(file: UploadedFile, _fields: Mapping[str, str]) -> Sink:
            if file.field not in files or file.field in chosen:
                raise UsageError(f"The form sent an unexpected file in the field {file.field!r}.")
            fd, path = stack.enter_context(memory_file("civicshare-upload"))
            file.path = path
            chosen[file.field] = file
            limit, what = files[file.field]
            return _MemorySink(file, limit, what, fd)

        total = sum(limit for limit, _what in files.values()) + TEXT_LIMIT
        main = max(files, key=lambda name: files[name][0])
        fields = await MultipartForm(request, session, open_file, total,
                             lambda: too_large(files[main][1], files[main][0], main)).read()
        yield MemoryForm(fields, {k: f for k, f in chosen.items() if f.size or f.filename})
