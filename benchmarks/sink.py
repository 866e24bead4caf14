"""A plain HTTP upload sink on the node's own server stack (FastAPI + uvicorn), for the share baseline.

    python benchmarks/sink.py --port PORT --dir DIR

``PUT`` or ``POST /upload/{name}`` streams the request body into ``DIR/name`` (no hashing, no
parsing: the least a server on this stack can do with a body) and answers ``{"bytes": N}``.
``GET /healthz`` answers ``{"status": "ok"}``. Used by bench_share.py; not part of civicshare.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException, Request

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def create_app(folder: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/upload/{name}", methods=["PUT", "POST"])
    async def upload(name: str, request: Request) -> dict[str, int]:
        if not _NAME.match(name) or name.startswith("."):
            raise HTTPException(400, "bad name")
        written = 0
        with (folder / name).open("wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
                written += len(chunk)
        return {"bytes": written}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    # The same server settings as `civicshare serve`: h11 through uvicorn, no access log.
    uvicorn.run(create_app(args.dir), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
