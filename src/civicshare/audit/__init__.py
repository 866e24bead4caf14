"""The tamper-evident audit log: an RFC 9162 Merkle tree per organisation, with signed checkpoints."""

from civicshare.audit.entry import AuditEntry
from civicshare.audit.log import AuditLog
from civicshare.audit.verify import VerifyReport, verify_log
from civicshare.errors import AuditTampered

__all__ = ["AuditEntry", "AuditLog", "AuditTampered", "VerifyReport", "verify_log"]
