"""Running the API with uvicorn. ``civicshare serve`` calls ``serve``."""

from __future__ import annotations

import threading

import structlog
import uvicorn

from civicshare.access import Actor
from civicshare.api.app import DEFAULT_MAX_DATASET_BYTES, DEFAULT_MAX_DOCUMENT_BYTES, create_app
from civicshare.node import Node

log = structlog.get_logger("civicshare.api")


def serve(node: Node, host: str = "127.0.0.1", port: int = 8080, *,
          max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
          max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
          checkpoint_every: float = 300.0) -> None:
    """Serve the API until interrupted, signing audit checkpoints every ``checkpoint_every`` seconds."""
    app = create_app(node, max_dataset_bytes=max_dataset_bytes, max_document_bytes=max_document_bytes)
    stop = threading.Event()
    signer = threading.Thread(target=_sign_checkpoints, args=(node, checkpoint_every, stop),
                              name="civicshare-checkpoints", daemon=True)
    signer.start()
    try:
        # No access log: query strings carry dataset and file names, which can name people.
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        signer.join(timeout=5)


def _sign_checkpoints(node: Node, every: float, stop: threading.Event) -> None:
    """Keep a recent signed checkpoint of every organisation's log, for partners to collect."""
    while not stop.wait(every):
        for org in node.organisations():
            try:
                node.audit_checkpoint(Actor.operator(org.id, "checkpointer"))
            except Exception as exc:  # noqa: BLE001 - one failed signing must not stop the next
                log.warning("audit checkpoint failed", organisation=org.id, error=type(exc).__name__)
