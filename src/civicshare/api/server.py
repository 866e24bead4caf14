"""Running the API with uvicorn. ``civicshare serve`` calls ``serve``.

Beside the API, background threads keep the node's promises without anyone acting: they sign audit
checkpoints, fetch trusted directories again (so a revocation bites within a minute), deliver
transfers from the outbox, swap checkpoints with partners (witnessing), and delete received
holdings whose retention or agreement ended (retention).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

import structlog
import uvicorn

from civicshare.access import Actor
from civicshare.api.app import DEFAULT_MAX_DATASET_BYTES, DEFAULT_MAX_DOCUMENT_BYTES, create_app
from civicshare.doorbell import Listener, ring
from civicshare.exchange import witnessing
from civicshare.lazyimport import lazy_module, load_now
from civicshare.node import Node

log = structlog.get_logger("civicshare.api")


def serve(node: Node, host: str = "127.0.0.1", port: int = 8080, *,
          max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
          max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
          checkpoint_every: float = 300.0, directory_refresh: float = 20.0,
          deliver_every: float = 2.0, retry_base: float = 2.0, witness_every: float = 300.0,
          retention_every: float = 60.0) -> None:
    """Serve the API until interrupted, with the background work at the given intervals (seconds).

    Checkpoints are signed every ``checkpoint_every``; trusted directories fetched every
    ``directory_refresh``; due transfers delivered every ``deliver_every`` (failed attempts back off
    from ``retry_base``); checkpoints swapped with partners every ``witness_every``; received holdings
    past their retention or agreement deleted every ``retention_every``.
    """
    return_large_buffers()
    # Request threads may first touch duckdb at the same moment; finish its deferred import here.
    load_now(lazy_module("duckdb"))
    app = create_app(node, max_dataset_bytes=max_dataset_bytes, max_document_bytes=max_document_bytes)
    stop = threading.Event()
    # A share made by another process (the command line) rings this to be delivered at once.
    bell = Listener(node.layout.delivery_bell)
    threads = [
        _periodic("checkpoints", checkpoint_every, stop, lambda: _sign_checkpoints(node)),
        _periodic("directories", directory_refresh, stop, lambda: _refresh_directories(node)),
        threading.Thread(target=node.exchange.worker(retry_base=retry_base).run, args=(deliver_every, stop, bell),
                         name="civicshare-delivery", daemon=True),
        _periodic("witnesses", witness_every, stop, lambda: _exchange_checkpoints(node)),
        _periodic("retention", retention_every, stop, lambda: _sweep_retention(node)),
        threading.Thread(target=_send_notices, args=(node, deliver_every, stop), name="civicshare-notices",
                         daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        # No access log: query strings carry dataset and file names, which can name people.
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        node.notices.wake.set()
        ring(node.layout.delivery_bell)
        for thread in threads:
            thread.join(timeout=15)
        if not any(thread.is_alive() for thread in threads):
            bell.close()  # a worker still finishing a part may yet wait on it


_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # above the largest part a transfer may have (16 MiB)
ARENA_MAX = 4


def return_large_buffers() -> bool:
    """Keep the memory of a busy node bounded while its transient buffers are reused cheaply.

    By default glibc raises its mmap threshold each time a large block is freed, so which blocks
    come from a thread's heap arena and which get their own mapping keeps changing, and the arenas
    fragment. A fixed threshold above the largest part makes the parts of transfers (8 MiB each)
    come from the arenas, whose pages are reused part after part (a fresh mapping for each part
    costs a page fault for every 4 KiB, about half a CPU-second per GiB sent); fewer arenas bound
    what the threads keep. Measured: peak RSS stays at about 180-215 MiB per node over six 1 GiB
    shares in a row. False where this is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))


def _periodic(name: str, every: float, stop: threading.Event, work: Callable[[], None]) -> threading.Thread:
    """A daemon thread running ``work`` every ``every`` seconds until ``stop``; one failure never ends it."""

    def loop() -> None:
        while not stop.wait(every):
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - the next round may succeed; the server must go on
                log.warning(f"{name}: background work failed", error=type(exc).__name__)

    return threading.Thread(target=loop, name=f"civicshare-{name}", daemon=True)


def _sign_checkpoints(node: Node) -> None:
    """Keep a recent signed checkpoint of every organisation's log, for partners to collect."""
    for org in node.organisations():
        try:
            node.audit_checkpoint(Actor.operator(org.id, "checkpointer"))
        except Exception as exc:  # noqa: BLE001 - one failed signing must not stop the next
            log.warning("audit checkpoint failed", organisation=org.id, error=type(exc).__name__)


def _refresh_directories(node: Node) -> None:
    """Keep trusted directories current, so a revocation takes effect here soon after it is published."""
    for updated in node.refresh_directories():
        log.info("newer directory edition accepted", directory=updated)


def _exchange_checkpoints(node: Node) -> None:
    """Swap a fresh checkpoint with every partner of every hosted organisation (witnessing)."""
    for org in node.organisations():
        for result in witnessing.exchange(node, org.id):
            if result.error:
                log.warning("checkpoint exchange failed", organisation=org.id, partner=result.partner,
                            error=result.error[:200])


def _sweep_retention(node: Node) -> None:
    """Delete received holdings that may no longer be kept (certificates go to providers) and flag
    providers' overdue certificates."""
    report = node.retention.sweep()
    if report.deleted or report.overdue:
        log.info("retention sweep", deleted=len(report.deleted), overdue=len(report.overdue))


def _send_notices(node: Node, every: float, stop: threading.Event) -> None:
    """Send agreement notices and deletion certificates every ``every`` s, and at once when one is queued."""
    while not stop.is_set():
        node.notices.wake.wait(every)
        node.notices.wake.clear()
        if stop.is_set():
            return
        try:
            node.send_notices()
        except Exception as exc:  # noqa: BLE001 - the next round may succeed; the server must go on
            log.warning("notices: sending failed", error=type(exc).__name__, detail=str(exc)[:200])
