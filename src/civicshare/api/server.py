"""Running the API with uvicorn. ``civicshare serve`` calls ``serve``."""

from __future__ import annotations

import uvicorn

from civicshare.api.app import DEFAULT_MAX_DATASET_BYTES, DEFAULT_MAX_DOCUMENT_BYTES, create_app
from civicshare.node import Node


def serve(node: Node, host: str = "127.0.0.1", port: int = 8080, *,
          max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
          max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES) -> None:
    """Serve the API until interrupted."""
    app = create_app(node, max_dataset_bytes=max_dataset_bytes, max_document_bytes=max_document_bytes)
    # No access log: query strings carry dataset and file names, which can name people.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
