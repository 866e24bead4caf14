"""Every page router of the web UI. Each module defines ``router``, with paths relative to /web."""

from __future__ import annotations

from fastapi import FastAPI


def include_pages(web: FastAPI) -> None:
    # Imported here, not at the top: the page modules import from this package (holdings_import).
    from civicshare.web.pages import (
        agreements,
        audit,
        dashboard,
        holdings,
        inbox,
        keys,
        share,
        signin,
        static_pages,
        transfers,
    )

    # Sign-in and the pages anyone may read first, then the service navigation's order.
    for module in (signin, static_pages, dashboard, holdings, share, inbox, transfers, agreements, audit, keys):
        web.include_router(module.router)
