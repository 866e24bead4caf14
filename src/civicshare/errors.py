"""The exception tree.

Every error the core raises is a ``CivicshareError``. Each class carries a stable ``code``, the HTTP
status the API answers with, and the CLI exit code. The edges turn an error into one JSON shape
(``to_json``), an HTTP response, or one line on stderr; users never see a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR_SHAPE_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CivicshareError(Exception):
    """Base of every error the core raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": ERROR_SHAPE_VERSION,
            "code": self.code,
            "message": self.message,
        }
        if self.problems:
            body["problems"] = [p.to_json() for p in self.problems]
        return {"error": body}

    def one_line(self) -> str:
        """The message for a terminal: one line, with the first problems appended."""
        if not self.problems:
            return self.message
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = len(self.problems) - 5
        tail = f" (and {more} more)" if more > 0 else ""
        return f"{self.message}: {shown}{tail}"


class UsageError(CivicshareError):
    """The request itself is malformed: a missing option, an unknown format."""

    code = "usage"
    http_status = 400
    exit_code = 2


class ConfigError(CivicshareError):
    """The node home is missing, incomplete or not what was expected."""

    code = "config"
    http_status = 500


class NotFound(CivicshareError):
    """The thing asked for does not exist, or is not visible to the caller's organisation."""

    code = "not_found"
    http_status = 404


class Conflict(CivicshareError):
    """The thing to create already exists."""

    code = "conflict"
    http_status = 409


class InvalidInput(CivicshareError):
    """An input file or request body failed validation; ``problems`` lists every fault found."""

    code = "invalid_input"
    http_status = 422


class TooLarge(InvalidInput):
    """An input is larger than this node accepts."""

    code = "too_large"
    http_status = 413


class SecurityError(CivicshareError):
    """A security check failed. Raised, never returned as False."""

    code = "security"
    http_status = 403


class AuthenticationFailed(SecurityError):
    """No credentials, or credentials that do not match."""

    code = "unauthenticated"
    http_status = 401


class AccountLocked(AuthenticationFailed):
    """Too many failed sign-ins in a row: the account refuses every sign-in until it is unlocked."""

    code = "account_locked"


class PermissionDenied(SecurityError):
    """The caller is known but their role does not allow this."""

    code = "forbidden"
    http_status = 403


class KeystoreLocked(SecurityError):
    """The keystore could not be opened: wrong passphrase, or none given."""

    code = "keystore_locked"
    http_status = 503


class IntegrityError(SecurityError):
    """Stored data failed an integrity check: tampering, corruption or the wrong key."""

    code = "integrity"
    http_status = 500


class Shredded(CivicshareError):
    """The holding's data key was destroyed; its contents are gone for good."""

    code = "shredded"
    http_status = 410


class AuditTampered(IntegrityError):
    """The audit log does not verify; ``index`` is the first entry that does not."""

    code = "audit_tampered"

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(f"The audit log does not verify at index {index}: {message.rstrip('.')}.")
        self.index = index

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["error"]["index"] = self.index
        return body


class UnknownSender(SecurityError):
    """A node-to-node request from an organisation that is neither pinned nor in a trusted directory."""

    code = "unknown_sender"
    http_status = 403


class PartnerRevoked(SecurityError):
    """The organisation has been revoked by a directory this organisation trusts."""

    code = "partner_revoked"
    http_status = 403


class SignatureRefused(AuthenticationFailed):
    """A node-to-node request whose HTTP message signature is missing, malformed, expired or forged."""

    code = "bad_signature"
    http_status = 401


class DigestMismatch(SignatureRefused):
    """A signed node-to-node request whose body does not match its signed Content-Digest."""

    code = "digest_mismatch"


class Replayed(SecurityError):
    """A node-to-node request that was already seen (its nonce was used before)."""

    code = "replayed"
    http_status = 409


class NotForUs(SecurityError):
    """A payload or manifest that is not sealed to, or not addressed to, this organisation."""

    code = "not_for_us"
    http_status = 422


class ManifestRefused(SecurityError):
    """A manifest that does not verify, or a second, different manifest for a transfer already begun."""

    code = "manifest_refused"
    http_status = 422


class PartRefused(InvalidInput):
    """A part of a transfer that is out of range or not the length its manifest says."""

    code = "part_refused"
    http_status = 422


class Unreachable(CivicshareError):
    """A partner's node could not be reached or answered with a fault; the transfer is retried."""

    code = "unreachable"
    http_status = 502


class StillPending(CivicshareError):
    """Waiting for a transfer ended before it was delivered or failed; it is still being delivered."""

    code = "still_pending"
    http_status = 504


class AgreementRefused(SecurityError):
    """A data sharing agreement does not allow this share, arrival or use of a holding.

    ``rule`` is what the agreement requires and ``reason`` why it is not met, both in plain words
    ("Data moves only under an active agreement", "agreement DSA-2026-0001 ended on 2026-03-31").
    """

    code = "agreement_refused"
    http_status = 403

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason.rstrip('.')}.")
        self.rule = rule
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["error"].update(rule=self.rule, reason=self.reason)
        return body
