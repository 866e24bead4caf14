"""Who may do what: roles, permissions and the acting identity every use case receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from civicshare.errors import PermissionDenied, UsageError


class Role(StrEnum):
    ADMIN = "admin"
    DPO = "dpo"
    RECORDS_MANAGER = "records_manager"
    CASEWORKER = "caseworker"


class Permission(StrEnum):
    HOLDINGS_READ = "holdings.read"
    HOLDINGS_IMPORT = "holdings.import"
    HOLDINGS_EXPORT = "holdings.export"
    HOLDINGS_SHRED = "holdings.shred"
    KEYS_READ = "keys.read"
    KEYS_ROTATE = "keys.rotate"
    KEYS_EXPORT = "keys.export"
    USERS_MANAGE = "users.manage"
    AUDIT_READ = "audit.read"
    PARTNERS_READ = "partners.read"
    PARTNERS_MANAGE = "partners.manage"
    TRANSFERS_SHARE = "transfers.share"
    TRANSFERS_READ = "transfers.read"
    AGREEMENTS_READ = "agreements.read"
    AGREEMENTS_MANAGE = "agreements.manage"
    AGREEMENTS_SIGN = "agreements.sign"


# Signing an agreement for the organisation is the data protection officer's alone, not an administrator's.
_ALL = frozenset(Permission) - {Permission.AGREEMENTS_SIGN}
_WORK = frozenset({Permission.HOLDINGS_READ, Permission.HOLDINGS_IMPORT, Permission.HOLDINGS_EXPORT})
# Data protection officers and records managers keep the register of data sharing agreements.
_AGREEMENTS = frozenset({Permission.AGREEMENTS_READ, Permission.AGREEMENTS_MANAGE})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Only an administrator pins partners: that decides whom data may go to.
    Role.ADMIN: _ALL,
    # A data protection officer answers erasure requests and oversees key custody.
    Role.DPO: _WORK | {Permission.HOLDINGS_SHRED, Permission.KEYS_READ, Permission.AUDIT_READ,
                       Permission.PARTNERS_READ, Permission.TRANSFERS_READ, Permission.AGREEMENTS_SIGN} | _AGREEMENTS,
    # A records manager sends holdings to partners; the ledger of what was sent is theirs to read.
    Role.RECORDS_MANAGER: _WORK | {Permission.HOLDINGS_SHRED, Permission.KEYS_READ, Permission.AUDIT_READ,
                                   Permission.PARTNERS_READ, Permission.TRANSFERS_SHARE,
                                   Permission.TRANSFERS_READ} | _AGREEMENTS,
    # A caseworker may read the agreements their work falls under.
    Role.CASEWORKER: _WORK | {Permission.AGREEMENTS_READ},
}

ROLE_WORDS = {
    Role.ADMIN: "an administrator",
    Role.DPO: "a data protection officer",
    Role.RECORDS_MANAGER: "a records manager",
    Role.CASEWORKER: "a caseworker",
}


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise UsageError(f"Unknown role {value!r}: choose one of {choices}.") from None


@dataclass(frozen=True)
class Actor:
    """The person or process a use case runs for. Every query is scoped to ``org_id``."""

    org_id: str
    name: str
    role: Role

    @classmethod
    def operator(cls, org_id: str, name: str = "operator") -> Actor:
        """The node operator at the command line: whoever can read the node home administers it."""
        return cls(org_id=org_id, name=f"cli:{name}", role=Role.ADMIN)

    def may(self, permission: Permission) -> bool:
        """Whether the role holds ``permission``: for showing or hiding links and buttons only. Every use
        case enforces its permission itself with ``require``, which raises."""
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission, doing: str) -> None:
        if permission not in ROLE_PERMISSIONS[self.role]:
            raise PermissionDenied(f"{self.name} is {ROLE_WORDS[self.role]} and may not {doing}.")
