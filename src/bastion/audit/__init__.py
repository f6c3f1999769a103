"""The tamper-evident audit log.

>>> from bastion.storage import Database
>>> from bastion.audit import AuditLog
>>> db = Database.open("sqlite://"); db.migrate()
>>> AuditLog(database=db).verify().records
0
"""

from bastion.audit.chain import AuditEvent, AuditLog, AuditRecord, ChainReport, chain_hash

__all__ = ["AuditEvent", "AuditLog", "AuditRecord", "ChainReport", "chain_hash"]
