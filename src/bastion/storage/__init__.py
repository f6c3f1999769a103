"""Relational storage: SQLite by default, PostgreSQL at scale.

>>> from bastion.storage import Database
>>> db = Database.open("sqlite://")
>>> db.migrate()
"""

from bastion.storage import tables
from bastion.storage.database import Database

__all__ = ["Database", "tables"]
