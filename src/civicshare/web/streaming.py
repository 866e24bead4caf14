"""A document upload streamed, as it arrives, through a pipe into the core's encryption.

The form is read by civicshare.web.uploads; its one file goes into a pipe (civicshare.uploadpipe)
whose read end the core reads in a worker thread, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Generic, TypeVar

import anyio
from starlette.requests import Request

from civicshare.errors import CivicshareError, UsageError
from civicshare.uploadpipe import CHUNK, PipeSource, interrupted, read_through
from civicshare.web.deps import WebSession
from civicshare.web.uploads import TEXT_LIMIT, MultipartForm, Sink, UploadedFile, too_large

T = TypeVar("T")


class PipeSink(Sink, Generic[T]):
    """Feeds a file part through a pipe to ``work``, run in a worker thread as the part arrives."""

    def __init__(self, file: UploadedFile, limit: int, what: str, work: Callable[[BinaryIO], T],
                 limiter: anyio.CapacityLimiter | None) -> None:
        super().__init__(file, limit, what)
        r, self._w = os.pipe()
        os.set_blocking(self._w, False)  # the event loop waits for room in the pipe; no thread blocks on it
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, CHUNK)
        self._source = PipeSource(r)
        self._worker = asyncio.ensure_future(anyio.to_thread.run_sync(read_through, work, self._source,
                                                                      limiter=limiter))
        self.result: T | None = None

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._w, view):]
            except BlockingIOError:
                await anyio.wait_writable(self._w)
            except BrokenPipeError:
                # The core stopped reading: it failed, and awaiting it raises why.
                os.close(self._w)
                self._w = -1
                await self._worker
                raise interrupted() from None

    async def end(self) -> None:
        self._source.complete = True
        os.close(self._w)
        self._w = -1
        self.result = await self._worker

    async def fail(self, exc: BaseException) -> None:
        if isinstance(exc, CivicshareError):
            self._source.failure = exc  # what the core reads instead of end of file
        if self._w >= 0:
            os.close(self._w)
            self._w = -1
        with contextlib.suppress(BaseException):
            await self._worker


@dataclass
class StreamedForm(Generic[T]):
    """A form with one file streamed into ``work``: its fields, the file, and what ``work`` returned.

    ``file`` is None when none was chosen; ``result`` is None when ``start`` declined the file too.
    """

    fields: dict[str, str]
    file: UploadedFile | None
    result: T | None


async def streamed_form(request: Request, session: WebSession, file_field: str, limit: int, what: str,
                        start: Callable[[Mapping[str, str], UploadedFile], Callable[[BinaryIO], T] | None],
                        limiter: anyio.CapacityLimiter | None = None) -> StreamedForm[T]:
    """Read a form whose one file (``file_field``) is streamed, as it arrives, into the function that
    ``start`` returns given the fields before it; ``start`` returns None to decline (the fields are
    wrong), and then the file is read and dropped."""
    found: list[PipeSink[T]] = []
    chosen: list[UploadedFile] = []

    def open_file(file: UploadedFile, fields: Mapping[str, str]) -> Sink | None:
        if file.field != file_field or chosen:
            raise UsageError(f"The form sent an unexpected file in the field {file.field!r}.")
        chosen.append(file)
        work = start(fields, file)
        if work is None:
            return None
        sink = PipeSink(file, limit, what, work, limiter)
        found.append(sink)
        return sink

    fields = await MultipartForm(request, session, open_file, limit + TEXT_LIMIT,
                         lambda: too_large(what, limit, file_field)).read()
    return StreamedForm(fields, chosen[0] if chosen else None, found[0].result if found else None)
