"""``init``, ``org`` and ``user`` commands."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from civicshare.access import parse_role
from civicshare.cli.context import STATE, err, new_passphrase, out, print_json, print_table
from civicshare.errors import UsageError
from civicshare.node import Node

org_app = typer.Typer(help="Organisations hosted on this node.", no_args_is_help=True)
user_app = typer.Typer(help="Users, their API tokens and their web sign-in.", no_args_is_help=True)

OrgOpt = Annotated[str | None, typer.Option("--org", help="Organisation id (may be left out if the node hosts one).")]


def register(app: typer.Typer) -> None:
    app.command()(init)


def init(
    org: Annotated[str, typer.Option("--org", help="Id of the organisation, e.g. north-wold-dc.")],
    name: Annotated[str, typer.Option("--name", help="Its name, e.g. 'North Wold District Council'.")],
    url: Annotated[str | None, typer.Option("--url", help="The public URL partners will reach this node at.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL; SQLite in the home if left out.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a new node home hosting ORG, with its database, blob store and keys."""
    home = STATE.home_path()
    node = Node.init(home, org, name, url=url, db_url=db, passphrase=new_passphrase, by=STATE.operator_name())
    with node:
        records = node.keys.list(org)
        if json_out:
            print_json({"home": str(node.layout.home), "organisation": node.organisation(org).to_json(),
                        "database": node.db.backend, "keys": [k.to_json() for k in records]})
            return
        out.print(f"Created node home {node.layout.home} for {name} ({org}), database: {node.db.backend}.")
        for key in records:
            out.print(f"  {key.purpose:<9} key {key.id}  {key.algorithm}  held in {key.location}")


@org_app.command("add")
def org_add(
    org: Annotated[str, typer.Option("--org", help="Id of the new organisation.")],
    name: Annotated[str, typer.Option("--name", help="Its name.")],
    url: Annotated[str | None, typer.Option("--url")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Host another organisation on this node, with keys of its own."""
    with STATE.node() as node:
        created = node.add_organisation(org, name, url=url, by=STATE.operator_name())
        if json_out:
            print_json(created.to_json())
        else:
            out.print(f"Added {created.name} ({created.id}) with its own signing key, age identity and KEK.")


@org_app.command("list")
def org_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The organisations this node hosts."""
    with STATE.node() as node:
        orgs = node.organisations()
        if json_out:
            print_json([o.to_json() for o in orgs])
        else:
            print_table("Organisations", ["id", "name", "url", "created"],
                        [[o.id, o.name, o.url, o.to_json()["created"]] for o in orgs])


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The user's name or login.")],
    role: Annotated[str, typer.Option("--role", help="admin, dpo, records_manager or caseworker.")],
    org: OrgOpt = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read a password for the web interface from stdin.")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a user and print their API token. The token is shown once and cannot be recovered."""
    parsed = parse_role(role)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with STATE.node() as node:
        user, token = node.add_user(node.resolve_org(org), name, parsed, password, by=STATE.operator_name())
        if json_out:
            print_json({"id": user.id, "organisation": user.org_id, "name": user.name,
                        "role": user.role.value, "token": token})
            return
        err.print(f"Added {user.name} ({user.role.value}) to {user.org_id}. Their API token, shown only once:")
        out.print(token, markup=False)


@user_app.command("list")
def user_list(org: OrgOpt = None, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The users of an organisation."""
    with STATE.node() as node:
        users = node.users.list(node.resolve_org(org))
        web = [node.signin.status(u.org_id, u.name) for u in users]
        if json_out:
            print_json([{"id": u.id, "organisation": u.org_id, "name": u.name, "role": u.role.value,
                         "password": w["password"], "totp": w["totp"], "locked_until": w["locked_until"]}
                        for u, w in zip(users, web, strict=True)])
        else:
            print_table("Users", ["id", "name", "role", "web password", "TOTP", "locked until"],
                        [[u.id, u.name, u.role.value, "yes" if w["password"] else "no", "yes" if w["totp"] else "no",
                          w["locked_until"] or ""] for u, w in zip(users, web, strict=True)])


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("Give the password on stdin with --password-stdin, or run the command in a terminal.")
    return str(typer.prompt("New password (12 characters or more)", hide_input=True, confirmation_prompt=True))


@user_app.command("password")
def user_password(
    name: Annotated[str, typer.Argument(help="The user whose web sign-in password to set.")],
    org: OrgOpt = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the new password from stdin (one line).")] = False,
) -> None:
    """Set or replace a user's web sign-in password. Their web sessions end and any lock-out is lifted."""
    password = _read_password(password_stdin)
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        node.signin.set_password(actor, name, password)
        err.print(f"Set the web sign-in password of {name} in {actor.org_id}; their web sessions have ended.")


@user_app.command("totp")
def user_totp(
    name: Annotated[str, typer.Argument(help="The user to ask for a security code at sign-in.")],
    org: OrgOpt = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop asking for a code (a lost phone).")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Set up a TOTP second factor for a user and print its secret and otpauth:// URI, shown only once.

    The user adds it to an authenticator app; from then on web sign-in asks for a 6-digit code after
    the password. Running it again replaces the secret.
    """
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        if remove:
            had = node.signin.remove_totp(actor, name)
            if json_out:
                print_json({"name": name, "organisation": actor.org_id, "totp": False, "removed": had})
            else:
                err.print(f"{name} is no longer asked for a security code." if had
                          else f"{name} had no security code set up; nothing changed.")
            return
        secret, uri = node.signin.enrol_totp(actor, name)
        if json_out:
            print_json({"name": name, "organisation": actor.org_id, "secret": secret, "uri": uri})
            return
        err.print(f"Security codes set up for {name} in {actor.org_id}. Give them this secret (or the URI, "
                  "as a QR code) for their authenticator app; it is shown only once:")
        out.print(secret, markup=False)
        out.print(uri, markup=False)


@user_app.command("unlock")
def user_unlock(
    name: Annotated[str, typer.Argument(help="The user locked out after repeated failed sign-ins.")],
    org: OrgOpt = None,
) -> None:
    """Unlock a user's web sign-in now, instead of waiting 15 minutes, and reset their failure count."""
    with STATE.node() as node:
        actor = STATE.operator(node, org)
        until = node.signin.unlock(actor, name)
        err.print(f"Unlocked {name}; the lock would have ended at {until:%H:%M} UTC." if until is not None
                  else f"{name} was not locked; their count of failed sign-ins is reset.")


