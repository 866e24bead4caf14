"""The web UI for council staff, on the GOV.UK Design System: server-rendered, working without JavaScript."""

from civicshare.web.app import create_web, mount_web

__all__ = ["create_web", "mount_web"]
