"""The command line: parse, call the core, format. Errors become one line on stderr and exit code 1."""

from civicshare.cli.app import app, main

__all__ = ["app", "main"]
