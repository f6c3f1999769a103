r"""Mask CSV, Parquet and JSON-lines files by policy, one batch at a time in constant memory.

Each batch is read with PyArrow, each column dictionary-encoded, and the operator run
once per distinct value (all operators are deterministic), so a column of a million
repeated postcodes costs as much as its distinct values. CSV columns are read as text,
so "02134" stays "02134".

>>> import tempfile, pathlib
>>> from bastion.privacy import MaskKeys, MaskPolicy, mask_file
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "in.csv").write_text("id,note\n1,mail bob@example.com\n")
>>> policy = MaskPolicy.from_document({"columns": {"id": "keep"}}, keys=MaskKeys())
>>> summary = mask_file(folder / "in.csv", folder / "out.csv", policy=policy)
>>> (folder / "out.csv").read_text().splitlines()[1]
'"1","mail <EMAIL>"'
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from bastion.crypto.outputs import write_new_file
from bastion.errors import InvalidInput
from bastion.privacy.operators import mask_text
from bastion.privacy.policy import ColumnPlan, MaskPolicy
from bastion.privacy.scanner import PiiScanner
from bastion.privacy.vault import TokenVault

Progress = Callable[[int, int], None]  # (done, total), in bytes or rows
_BATCH_ROWS = 65_536
_BLOCK_BYTES = 8 << 20
_MEMO_VALUES = 200_000  # masks remembered per column


@dataclass
class ColumnSummary:
    """What was done to one column."""

    name: str
    plan: str
    values: int = 0  # non-null values seen
    changed: int = 0  # values the output differs in
    suppressed: int = 0  # values the operator could not mask safely (written as null)
    findings: Counter[str] = field(default_factory=Counter)  # per entity, scanned columns


@dataclass(frozen=True)
class MaskSummary:
    """What a masking run did."""

    rows: int
    columns: tuple[ColumnSummary, ...]


def mask_file(
    source: Path,
    target: Path,
    *,
    policy: MaskPolicy,
    scanner: PiiScanner | None = None,
    on_progress: Progress | None = None,
) -> MaskSummary:
    """Mask ``source`` into the new file ``target`` (same format, chosen by the file suffix).

    ``target`` appears (mode 0600) only once every row is masked and written: a failure or
    a killed process leaves no file, never a prefix (:func:`bastion.crypto.outputs.write_new_file`).

    Raises:
        InvalidInput: an unknown format, an unreadable file, or a column the policy refuses.
        Conflict: ``target`` exists; it is left as it was.
    """
    kind = _format(source)
    if _format(target) != kind:
        raise InvalidInput("The output must have the same format (suffix) as the input.")
    if kind != "jsonl" and not source.is_file():  # their readers seek
        raise InvalidInput(f"{source.name}: CSV and Parquet are read from a regular file.")
    masker = _Masker(policy, scanner or PiiScanner())
    readers = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}

    def write(sink: BinaryIO) -> int:
        rows = 0
        with _WRITERS[kind](sink) as writer:
            try:
                for batch, done, total in readers[kind](source):
                    writer.write(masker.mask(batch))
                    rows += batch.num_rows
                    if on_progress is not None:
                        on_progress(done, total)
            except (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError):
                # Parser messages quote the offending row, which is personal data: say less.
                raise InvalidInput(
                    f"Cannot read {source.name} as {kind} after {rows} rows: it is malformed "
                    "(row lengths, quoting or encoding)."
                ) from None
        return rows

    rows = _write_new(target, write)
    return MaskSummary(rows=rows, columns=tuple(masker.summaries.values()))


class _Masker:
    def __init__(self, policy: MaskPolicy, scanner: PiiScanner) -> None:
        self._policy = policy
        self._scanner = scanner
        self.summaries: dict[str, ColumnSummary] = {}
        self._memo: dict[str, dict[str, tuple[str | None, tuple[str, ...]]]] = {}

    def mask(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        names, arrays = [], []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            plan = self._policy.plan_for(name)
            summary = self.summaries.setdefault(name, ColumnSummary(name, plan.description))
            if plan.action == "drop":
                continue
            names.append(name)
            arrays.append(column if plan.action == "keep" else self._apply(plan, column, summary))
            summary.values += len(column) - column.null_count
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _apply(self, plan: ColumnPlan, column: pa.Array, summary: ColumnSummary) -> pa.Array:
        encoded = pc.dictionary_encode(_as_text(column))
        distinct: list[str] = encoded.dictionary.to_pylist()
        if not distinct:  # nothing but nulls
            return pa.nulls(len(column), pa.string())
        counts = np.bincount(
            encoded.indices.fill_null(0).to_numpy(zero_copy_only=False),
            minlength=len(distinct),
        )
        counts[0] -= encoded.indices.null_count
        results = self._masks(plan, summary.name, distinct)
        for value, (out, entities), count in zip(distinct, results, counts, strict=True):
            summary.changed += int(count) if out != value else 0
            summary.suppressed += int(count) if out is None else 0
            for entity in entities:
                summary.findings[entity] += int(count)
        return pa.array([out for out, _ in results], pa.string()).take(encoded.indices)

    def _masks(
        self, plan: ColumnPlan, column: str, distinct: list[str]
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """The mask of each distinct value (and the entities found, for scanned columns).

        Every operator is deterministic, so a value seen in an earlier batch is not masked
        again: exports repeat their customers, and FF1 or a scan costs far more than a lookup.
        """
        memo = self._memo.setdefault(column, {})
        known = {value: memo[value] for value in distinct if value in memo}
        missing = [value for value in distinct if value not in known]
        fresh = dict(zip(missing, self._compute(plan, column, missing), strict=True))
        if len(memo) + len(fresh) > _MEMO_VALUES:
            memo.clear()  # bounded: memory stays flat whatever the file holds
        memo.update(fresh)
        return [known[value] if value in known else fresh[value] for value in distinct]

    def _compute(
        self, plan: ColumnPlan, column: str, values: list[str]
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        operator = plan.operator
        if operator is None:
            raise ValueError("a mask or scan plan has an operator")
        if plan.action == "scan":
            out: list[tuple[str | None, tuple[str, ...]]] = []
            for value in values:
                findings = self._scanner.scan(value)
                masked = mask_text(value, findings, operator=operator)
                out.append((masked, tuple(str(f.entity) for f in findings)))
            return out
        if isinstance(operator, TokenVault):
            return [(token, ()) for token in operator.tokenize(values, field=column)]
        return [(operator.apply(value, field=column), ()) for value in values]


def read_table(path: Path) -> pa.Table:
    """A whole .csv, .parquet or .jsonl file as a table (for work that needs every row).

    Raises:
        InvalidInput: an unknown format, or a file that cannot be parsed.
    """
    kind = _format(path)
    try:
        if kind == "csv":
            return pacsv.read_csv(path)
        if kind == "parquet":
            return pq.read_table(path)
        return pajson.read_json(path)
    except (pa.ArrowInvalid, OSError):
        # Parser messages quote rows of the data: say where, not what.
        raise InvalidInput(f"Cannot read {path.name}: it is malformed.") from None


def write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to the new file ``path`` as .csv, .parquet or .jsonl, by its suffix.

    Like :func:`mask_file`, the file appears (mode 0600) whole or not at all.

    Raises:
        InvalidInput: an unknown suffix, or a folder that does not exist.
        Conflict: ``path`` exists; it is left as it was.
    """
    kind = _format(path)

    def write(sink: BinaryIO) -> int:
        with _WRITERS[kind](sink) as out:
            for batch in table.to_batches():
                out.write(batch)
        return int(table.num_rows)

    _write_new(path, write)


def _write_new(target: Path, write: Callable[[BinaryIO], int]) -> int:
    """``write_new_file``, with a missing folder said as a usage error rather than a trace.

    A released or masked table is derived from personal data, so the output is owner-only,
    never replaces an existing file (which could be the source itself under another name:
    a hard link or a bind mount), and never shows a prefix to a reader or survives a crash.
    """
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent} is not a folder: create it first.")
    return write_new_file(target, write)


def _as_text(column: pa.Array) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_nested(column.type):
        return pa.array(
            [None if v is None else json.dumps(v, sort_keys=True) for v in column.to_pylist()],
            pa.string(),
        )
    return pc.cast(column, pa.string())


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
    if suffix not in kinds:
        raise InvalidInput(
            f"Unknown table format {suffix or '(none)'}: use .csv, .jsonl or .parquet."
        )
    return kinds[suffix]


class _Writer(Protocol):
    def __enter__(self) -> _Writer: ...

    def __exit__(self, *exc: object) -> None: ...

    def write(self, batch: pa.RecordBatch) -> None: ...


class _Counted(io.RawIOBase):
    """A binary file that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self.done += count
        return int(count)


Batches = Iterator[tuple[pa.RecordBatch, int, int]]


def _read_csv(source: Path) -> Batches:
    total = source.stat().st_size
    with source.open("rb") as raw:
        first = raw.readline().decode("utf-8-sig")
        header = next(csv.reader([first]), None)
        if header is None:
            return
        raw.seek(0)
        counted = _Counted(raw)
        reader = pacsv.open_csv(
            counted,
            read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
            ),
        )
        for batch in reader:
            yield batch, counted.done, total


def _read_jsonl(source: Path) -> Batches:
    total = source.stat().st_size
    with source.open("rb") as raw:
        records: list[dict[str, Any]] = []
        done = 0  # counted, not tell(): a pipe or FIFO (`<(zcat …)`) cannot tell
        for line in raw:
            done += len(line)
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise InvalidInput("Every JSON line must be an object.")
                records.append(record)
            if len(records) == _BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(records), done, total
                records = []
        if records:
            yield pa.RecordBatch.from_pylist(records), done, total


def _read_parquet(source: Path) -> Batches:
    parquet = pq.ParquetFile(source)
    total, done = parquet.metadata.num_rows, 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        done += batch.num_rows
        yield batch, done, total


class _CsvWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._writer: pacsv.CSVWriter | pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def __enter__(self) -> _CsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()  # ends the format; the sink stays open for write_new_file

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._schema = batch.schema
            self._writer = self._open(batch.schema)
        self._writer.write_batch(batch.cast(self._schema))

    def _open(self, schema: pa.Schema) -> pacsv.CSVWriter | pq.ParquetWriter:
        return pacsv.CSVWriter(self._sink, schema)


class _ParquetWriter(_CsvWriter):
    def _open(self, schema: pa.Schema) -> pacsv.CSVWriter | pq.ParquetWriter:
        return pq.ParquetWriter(self._sink, schema)


class _JsonlWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink

    def __enter__(self) -> _JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # the sink belongs to write_new_file

    def write(self, batch: pa.RecordBatch) -> None:
        for record in batch.to_pylist():
            line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
            self._sink.write(line.encode())


_WRITERS: dict[str, Callable[[BinaryIO], _Writer]] = {
    "csv": _CsvWriter,
    "jsonl": _JsonlWriter,
    "parquet": _ParquetWriter,
}
