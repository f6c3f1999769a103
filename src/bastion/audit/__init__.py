"""The tamper-evident audit log: an RFC 6962 Merkle tree with signed checkpoints.

>>> import pathlib, tempfile, time
>>> from bastion.crypto import SigningKey
>>> from bastion.storage import Database
>>> from bastion.audit import AuditLog
>>> db = Database.open("sqlite://"); db.migrate()
>>> key = SigningKey.generate(pathlib.Path(tempfile.mkdtemp()) / "audit.pem")
>>> log = AuditLog(database=db, signing_key=key, origin="example/audit", clock=time.time)
>>> log.verify().size
0
"""

from bastion.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from bastion.audit.entry import AuditEntry, AuditEvent
from bastion.audit.log import AuditLog
from bastion.audit.verification import VerifyReport

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "Checkpoint",
    "VerifyReport",
    "sign_checkpoint",
    "verify_checkpoint",
]
