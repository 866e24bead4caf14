"""The ``civicshare`` command. Names, options and ``--json`` fields are stable once released."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from civicshare import __version__
from civicshare.cli import agreements as agreement_cmds
from civicshare.cli import audit as audit_cmds
from civicshare.cli import directory as directory_cmds
from civicshare.cli import holdings as holdings_cmds
from civicshare.cli import keys as keys_cmds
from civicshare.cli import mappings as mapping_cmds
from civicshare.cli import org as org_cmds
from civicshare.cli import partners as partner_cmds
from civicshare.cli import quality as quality_cmds
from civicshare.cli import schemas as schema_cmds
from civicshare.cli import transfers as transfer_cmds
from civicshare.cli.context import STATE, err, out, print_json
from civicshare.errors import CivicshareError, UsageError

app = typer.Typer(
    name="civicshare",
    help="civicshare: hold and share citizen records and documents without losing or exposing them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(org_cmds.org_app, name="org")
app.add_typer(keys_cmds.keys_app, name="keys")
app.add_typer(org_cmds.user_app, name="user")
app.add_typer(holdings_cmds.holdings_app, name="holdings")
app.add_typer(audit_cmds.audit_app, name="audit")
app.add_typer(partner_cmds.partner_app, name="partner")
app.add_typer(agreement_cmds.agreement_app, name="agreement")
app.add_typer(directory_cmds.directory_app, name="directory")
app.add_typer(mapping_cmds.mapping_app, name="mapping")
app.add_typer(schema_cmds.schema_app, name="schema")
org_cmds.register(app)
holdings_cmds.register(app)
partner_cmds.register(app)
transfer_cmds.register(app)
quality_cmds.register(app)


def _version(value: bool) -> None:
    if value:
        out.print(f"civicshare {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    home: Annotated[Path | None, typer.Option("--home", envvar="CIVICSHARE_HOME",
                                              help="The node home folder (or set CIVICSHARE_HOME).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    STATE.home = home


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    max_dataset_mb: Annotated[int, typer.Option(help="Largest dataset upload accepted, in MiB (held in memory).")]
    = 512,
    max_document_mb: Annotated[int, typer.Option(help="Largest document upload accepted, in MiB.")] = 2048,
    checkpoint_every: Annotated[int, typer.Option(help="Sign an audit checkpoint this often, in seconds.")] = 300,
    directory_refresh: Annotated[int, typer.Option(help="Fetch trusted directories again this often, in seconds.")]
    = 20,
    deliver_every: Annotated[float, typer.Option(help="Look for transfers to deliver this often, in seconds.")]
    = 2.0,
    retry_base: Annotated[float, typer.Option(hidden=True, help="First retry delay after a failed delivery "
                                                                "attempt, in seconds (doubles up to 300).")] = 2.0,
    witness_every: Annotated[float, typer.Option(help="Swap audit checkpoints with partners this often, "
                                                      "in seconds.")] = 300.0,
    retention_every: Annotated[float, typer.Option(help="Delete received holdings whose retention or agreement "
                                                        "ended this often, in seconds.")] = 60.0,
) -> None:
    """Run the API, the delivery worker and the witness exchange (later the web interface) until stopped."""
    from civicshare.api.server import serve as run

    if max_dataset_mb < 1 or max_document_mb < 1:
        raise UsageError("Upload limits must be at least 1 MiB.")
    if directory_refresh < 1:
        raise UsageError("--directory-refresh must be at least 1 second.")
    if checkpoint_every < 1:
        raise UsageError("--checkpoint-every must be at least 1 second.")
    if deliver_every <= 0 or retry_base <= 0 or witness_every <= 0:
        raise UsageError("--deliver-every, --retry-base and --witness-every must be more than 0 seconds.")
    if retention_every <= 0:
        raise UsageError("--retention-every must be more than 0 seconds.")

    with STATE.node() as node:
        # Unlock every keystore now, so a wrong passphrase fails at start rather than on first request.
        for org in node.organisations():
            node.keystore(org.id)
        err.print(f"civicshare {__version__} serving on http://{host}:{port} (Ctrl-C to stop)")
        run(node, host=host, port=port, max_dataset_bytes=max_dataset_mb << 20,
            max_document_bytes=max_document_mb << 20, checkpoint_every=checkpoint_every,
            directory_refresh=directory_refresh, deliver_every=deliver_every, retry_base=retry_base,
            witness_every=witness_every, retention_every=retention_every)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="How many synthetic residents to generate.")] = 10_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="Instead, serve demo nodes with demo users for the web "
                                                        "interface until Ctrl-C.")] = False,
    port: Annotated[int, typer.Option("--port", help="With --serve: node A's port; node B takes the next.")] = 8000,
    folder: Annotated[Path, typer.Option("--dir", help="With --serve: the folder for the demo node homes, "
                                                       "emptied on each run.")] = Path(".demo-serve"),
) -> None:
    """Run the scripted scenario on a throwaway home: two councils, a dataset, a document, keys.

    With --serve (`make serve`): demo nodes with demo data and a demo user of each role, to try the web
    interface; prints the addresses and the users' passwords, and serves until Ctrl-C.
    """
    if serve:
        from civicshare.demo_serve import serve_demo

        serve_demo(folder, port, lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))
        return
    from civicshare.demo import run_demo

    summary = run_demo(rows=rows, say=None if json_out else (lambda line: out.print(line)))
    if json_out:
        print_json(summary)


def main() -> None:
    """Entry point: no tracebacks for users, exit 1 for refusals, 2 for usage errors."""
    try:
        result = app(standalone_mode=False)
    except typer.Abort:
        err.print("civicshare: stopped.")
        sys.exit(1)
    except typer.TyperException as exc:
        # Click's own usage errors (Typer vendors click): its usual message, exit code 2.
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)
    except CivicshareError as exc:
        err.print(f"civicshare: {exc.one_line()}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("civicshare: interrupted.")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        err.print(f"civicshare: internal error ({type(exc).__name__}): {exc}", markup=False)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
