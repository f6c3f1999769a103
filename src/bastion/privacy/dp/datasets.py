"""Datasets registered for differentially private queries, stored encrypted.

A dataset is a table (CSV, Parquet or JSON lines when registered) kept as Parquet inside
a v1 envelope in the workspace's encrypted object store, bound to its name. Queries read
one numeric column at a time.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from bastion.crypto import BlobStore
from bastion.errors import Conflict, InvalidInput, NotFound
from bastion.privacy.tabular import read_table

_NAMESPACE = "dataset"
_KEPT = 4  # decrypted datasets kept in memory
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class DatasetInfo:
    """What was registered: name, rows and the columns with their types."""

    name: str
    rows: int
    columns: tuple[tuple[str, str], ...]


class DatasetStore:
    """Registers tables and hands out their numeric columns."""

    def __init__(self, *, blobs: BlobStore) -> None:
        self._blobs = blobs
        # Datasets never change once registered, so a query need not decrypt and parse one
        # again; the few most recent stay in memory.
        self._loaded: dict[str, pa.Table] = {}

    def register(self, name: str, path: Path) -> DatasetInfo:
        """Read ``path`` (.csv, .parquet, .jsonl) and store it encrypted as ``name``.

        Raises:
            InvalidInput: a bad name, an unknown format or an unreadable file.
            Conflict: a dataset of that name exists (datasets are immutable).
        """
        if _NAME.fullmatch(name) is None:
            raise InvalidInput("Dataset names are lower-case letters, digits, '.', '_' or '-'.")
        table = read_table(path)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        try:
            self._blobs.put(_NAMESPACE, name, sink.getvalue())
        except Conflict:
            raise Conflict(f"Dataset {name!r} exists; register a new name.") from None
        return _info(name, table)

    def names(self) -> list[str]:
        """Every registered dataset."""
        return self._blobs.names(_NAMESPACE)

    def load(self, name: str) -> pa.Table:
        """The whole table.

        Raises:
            NotFound: no such dataset.
        """
        if name in self._loaded:
            return self._loaded[name]
        try:
            data = self._blobs.get(_NAMESPACE, name)
        except NotFound:
            raise NotFound(f"No dataset {name!r}.") from None
        table = pq.read_table(io.BytesIO(data))
        if len(self._loaded) >= _KEPT:
            self._loaded.pop(next(iter(self._loaded)))
        self._loaded[name] = table
        return table

    def describe(self, name: str) -> DatasetInfo:
        """Rows and columns of a dataset."""
        return _info(name, self.load(name))

    def column(self, name: str, column: str) -> NDArray[np.float64]:
        """One column as floats (nulls as NaN); ``""`` gives one zero per row (for counts).

        Raises:
            NotFound: no such dataset or column.
            InvalidInput: the column is not numeric.
        """
        table = self.load(name)
        if not column:
            return np.zeros(table.num_rows)
        if column not in table.column_names:
            raise NotFound(f"Dataset {name!r} has no column {column!r}.")
        values = table[column]
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            raise InvalidInput(f"Column {column!r} is not numeric ({values.type}).")
        return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False))


def _info(name: str, table: pa.Table) -> DatasetInfo:
    columns = tuple((field.name, str(field.type)) for field in table.schema)
    return DatasetInfo(name=name, rows=table.num_rows, columns=columns)
