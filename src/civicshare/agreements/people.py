"""The people of an agreement: each party's contacts and signatories, checked field by field."""

from __future__ import annotations

import re
from typing import Any

from civicshare.agreements.checker import Checker
from civicshare.agreements.model import Contact, Signatory

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _per_party(check: Checker, value: Any, field: str, parties: set[str] | None, keys: tuple[str, ...],
               what: str) -> list[tuple[str, dict[str, Any]]] | None:
    """The entries of a list of people, each belonging to a party; every party must have one."""
    entries = check.items(value, field)
    if entries is None:
        return None
    result: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(entries):
        at = f"{field}[{i}]"
        item = check.mapping(entry, at, keys, keys, what)
        if item is None:
            continue
        result.append((at, item))
    if parties is not None:
        named = {item.get("org") for _at, item in result}
        for org in sorted(parties - named):
            check.add(f"names no {what} for {org}; every party needs one", field)
    return result if len(result) == len(entries) else None


def read_contacts(check: Checker, value: Any, parties: set[str] | None) -> tuple[Contact, ...] | None:
    entries = _per_party(check, value, "contacts", parties, ("org", "name", "email"), "contact")
    if entries is None:
        return None
    result: list[Contact] = []
    for at, item in entries:
        org = party_org(check, item["org"], f"{at}.org", parties)
        name = check.text(item["name"], f"{at}.name")
        email = check.text(item["email"], f"{at}.email")
        if email is not None and not _EMAIL_RE.fullmatch(email):
            check.add(f"{email!r} is not an email address", f"{at}.email")
            email = None
        if org is not None and name is not None and email is not None:
            result.append(Contact(org, name, email))
    return tuple(result) if len(result) == len(entries) else None


def read_signatories(check: Checker, value: Any, parties: set[str] | None) -> tuple[Signatory, ...] | None:
    entries = _per_party(check, value, "signatories", parties, ("org", "name", "role"), "signatory")
    if entries is None:
        return None
    result: list[Signatory] = []
    for at, item in entries:
        org = party_org(check, item["org"], f"{at}.org", parties)
        name = check.text(item["name"], f"{at}.name")
        role = check.text(item["role"], f"{at}.role")
        if org is not None and name is not None and role is not None:
            result.append(Signatory(org, name, role))
    return tuple(result) if len(result) == len(entries) else None


def party_org(check: Checker, value: Any, field: str, parties: set[str] | None) -> str | None:
    org = check.org(value, field)
    if org is not None and parties is not None and org not in parties:
        check.add(f"{org} is not one of the parties", field)
        return None
    return org
