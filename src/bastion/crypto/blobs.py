"""Encrypted objects in the database: everything Bastion stores encrypted lives here.

Each object is a v1 envelope bound (as associated data) to its namespace and name, so
an object copied to another name does not decrypt. ``rewrap`` moves objects to the
primary key version without touching their payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress

import sqlalchemy as sa

from bastion.crypto import stream
from bastion.crypto.keyring import Keyring
from bastion.errors import Conflict, NotFound
from bastion.storage import Database, tables
from bastion.types import Clock

_REWRAP_BATCH = 100


class BlobStore:
    """Encrypted named objects, grouped by namespace (``model``, ``identity``, …)."""

    def __init__(self, *, database: Database, keyring: Keyring, clock: Clock) -> None:
        self._db = database
        self._keyring = keyring
        self._clock = clock

    def put(self, namespace: str, name: str, data: bytes) -> None:
        """Encrypt and store a new object.

        Raises:
            Conflict: an object with this name exists; objects are never overwritten.
        """
        self.put_many(namespace, {name: data})

    def put_many(self, namespace: str, objects: Mapping[str, bytes]) -> None:
        """Encrypt and store several new objects in one transaction (all or none).

        Raises:
            Conflict: one of the names exists already.
        """
        rows = []
        for name, data in objects.items():
            envelope = stream.encrypt(
                data, keys=self._keyring, associated_data=_binding(namespace, name)
            )
            rows.append(
                {
                    "namespace": namespace,
                    "name": name,
                    "data": envelope,
                    "key_version": stream.read_header_bytes(envelope).wrapped.version,
                    "created_at": self._clock(),
                }
            )
        try:
            with self._db.transaction() as db:
                db.execute(tables.blobs.insert(), rows)
        except Conflict:
            raise Conflict(f"An object of {sorted(objects)[:3]} exists in {namespace}.") from None

    def get(self, namespace: str, name: str) -> bytes:
        """Decrypt an object.

        Raises:
            NotFound: there is no such object.
            CryptoError: it was tampered with, moved, or its key version is retired.
        """
        with self._db.transaction() as db:
            envelope = db.execute(
                sa.select(tables.blobs.c.data).where(
                    tables.blobs.c.namespace == namespace, tables.blobs.c.name == name
                )
            ).scalar()
        if envelope is None:
            raise NotFound(f"No stored object {namespace}/{name}.")
        return stream.decrypt(
            envelope, keys=self._keyring, associated_data=_binding(namespace, name)
        )

    def get_or_create(self, namespace: str, name: str, make: Callable[[], bytes]) -> bytes:
        """The object, created from ``make()`` the first time it is asked for."""
        try:
            return self.get(namespace, name)
        except NotFound:
            with suppress(Conflict):  # another process created it first: use theirs
                self.put(namespace, name, make())
            return self.get(namespace, name)

    def names(self, namespace: str) -> list[str]:
        """The names of the objects in ``namespace``, sorted."""
        table = tables.blobs
        with self._db.transaction() as db:
            rows = db.execute(
                sa.select(table.c.name).where(table.c.namespace == namespace).order_by(table.c.name)
            )
            return [str(name) for (name,) in rows]

    def count_below(self, version: int) -> int:
        """How many objects still use a key version older than ``version``."""
        with self._db.transaction() as db:
            return int(
                db.execute(
                    sa.select(sa.func.count())
                    .select_from(tables.blobs)
                    .where(tables.blobs.c.key_version < version)
                ).scalar_one()
            )

    def rewrap(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Rewrap every object not on the primary version; return how many were moved.

        Each batch commits on its own: an interrupted rewrap leaves every object
        readable, some under the old version and some under the new.
        """
        primary = next(v.version for v in self._keyring.status() if v.primary)
        moved = 0
        while True:
            with self._db.transaction() as db:
                rows = db.execute(
                    sa.select(tables.blobs.c.id, tables.blobs.c.data)
                    .where(tables.blobs.c.key_version < primary)
                    .limit(_REWRAP_BATCH)
                ).all()
            # Rewrap outside the write transaction: the keyring records its own usage.
            updates = []
            for row in rows:
                envelope = stream.rewrap(row.data, keys=self._keyring)
                version = stream.read_header_bytes(envelope).wrapped.version
                updates.append({"row_id": row.id, "data": envelope, "version": version})
            if updates:
                with self._db.transaction() as db:
                    db.execute(
                        tables.blobs.update()
                        .where(tables.blobs.c.id == sa.bindparam("row_id"))
                        .values(data=sa.bindparam("data"), key_version=sa.bindparam("version")),
                        updates,
                    )
            moved += len(rows)
            if progress is not None and rows:
                progress(len(rows))
            if len(rows) < _REWRAP_BATCH:
                return moved

    def retire(self, version: int) -> None:
        """Retire key ``version`` and older, once no object needs them.

        Raises:
            Conflict: objects still use them, or ``version`` is the primary.
        """
        self._keyring.retire(version, in_use=self.count_below(version + 1))


def _binding(namespace: str, name: str) -> bytes:
    return f"bastion/{namespace}/{name}".encode()
