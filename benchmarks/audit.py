"""Audit log throughput, verification time and hot-path cost, beside plain SQLite.

Run: .venv/bin/python benchmarks/audit.py [--entries 1000000] [--threads 64]

In one run:
- durable appends/s: Bastion's log (group commit, many appending threads) on SQLite and on
  PostgreSQL (127.0.0.1:5432, database test), against plain SQLite inserts committed one
  by one with the same durability (WAL, synchronous=FULL), from the same threads;
- the time to verify a log of --entries entries (every leaf and the root);
- the cost a request pays: building and hashing one entry, and one append's latency.
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from bastion.audit import AuditEvent, AuditLog
from bastion.crypto import SigningKey
from bastion.storage import Database

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def event(n: int) -> AuditEvent:
    return AuditEvent(
        event="model_infer",
        time=1_800_000_000.0 + n,
        request_id=secrets.token_hex(16),
        principal="bcl_0123456789abcdef01234567",
        auth_method="bearer",
        source="127.0.0.1",
        route="/v2/models/{name}/infer",
        action="infer",
        resource="digits@1",
        decision="allow",
        policy_ids=("analyst-use-models",),
        status=200,
        latency_ms=1.234,
        input_sha256="ab" * 32,
        input_bytes=2048,
        output_sha256="cd" * 32,
        output_bytes=48,
    )


def threaded(threads: int, per_thread: int, work: Callable[[int], None]) -> float:
    """Appends per second when ``threads`` threads each call ``work`` ``per_thread`` times."""

    def run(k: int) -> None:
        for i in range(per_thread):
            work(k * per_thread + i)

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return threads * per_thread / (time.perf_counter() - start)


def in_flight(log: AuditLog, total: int, window: int) -> float:
    """Appends/s with ``window`` requests waiting at once, as the async gateway submits them."""
    pending: list = []
    start = time.perf_counter()
    for n in range(total):
        pending.append(log.submit(event(n)))
        if len(pending) >= window:
            pending.pop(0).result()
    for future in pending:
        future.result()
    return total / (time.perf_counter() - start)


def open_log(url: str, folder: Path) -> AuditLog:
    database = Database.open(url)
    database.migrate()
    key = SigningKey.generate(folder / f"{secrets.token_hex(4)}.pem")
    return AuditLog(database=database, signing_key=key, origin="bench/audit", clock=time.time)


def plain_sqlite(path: Path, threads: int, per_thread: int) -> float:
    """Plain inserts, one committed transaction each, WAL + synchronous=FULL."""
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, entry TEXT)")
    setup.close()
    local = threading.local()

    def insert(n: int) -> None:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(path, timeout=60, isolation_level=None)
            local.db.execute("PRAGMA synchronous=FULL")
        local.db.execute("BEGIN IMMEDIATE")
        local.db.execute("INSERT INTO log (entry) VALUES (?)", (event(n).to_entry().decode(),))
        local.db.execute("COMMIT")

    return threaded(threads, per_thread, insert)


def postgres_available() -> bool:
    try:
        with sa.create_engine(POSTGRES).connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--per-thread", type=int, default=500)
    parser.add_argument(
        "--window",
        type=int,
        default=4096,
        help="requests awaiting their audit entry at once (async gateway)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rows: list[tuple[str, float]] = []
        rows.append(
            (
                "plain SQLite, commit per insert",
                plain_sqlite(folder / "plain.db", args.threads, args.per_thread),
            )
        )
        log = open_log(f"sqlite:///{folder / 'bastion.db'}", folder)
        rows.append(
            (
                "Bastion log, SQLite",
                threaded(args.threads, args.per_thread, lambda n: log.append(event(n))),
            )
        )
        total = args.threads * args.per_thread
        rows.append(
            (f"Bastion log, SQLite, {args.window} in flight", in_flight(log, total, args.window))
        )
        if postgres_available():
            schema = f"bench_{secrets.token_hex(4)}"
            admin = sa.create_engine(POSTGRES)
            with admin.begin() as connection:
                connection.execute(sa.text(f"create schema {schema}"))
            try:
                pg = open_log(f"{POSTGRES}?options=-csearch_path%3D{schema}", folder)
                rows.append(
                    (
                        "Bastion log, PostgreSQL",
                        threaded(args.threads, args.per_thread, lambda n: pg.append(event(n))),
                    )
                )
                rows.append(
                    (
                        f"Bastion log, PostgreSQL, {args.window} in flight",
                        in_flight(pg, total, args.window),
                    )
                )
            finally:
                with admin.begin() as connection:
                    connection.execute(sa.text(f"drop schema {schema} cascade"))

        build = time.perf_counter()
        big = open_log(f"sqlite:///{folder / 'big.db'}", folder)
        for start in range(0, args.entries, 20_000):
            big.append_many([event(n) for n in range(start, min(start + 20_000, args.entries))])
        built = time.perf_counter() - build
        clock = time.perf_counter()
        report = big.verify()
        verify_seconds = time.perf_counter() - clock

        samples = 20_000
        clock = time.perf_counter()
        for n in range(samples):
            event(n).to_entry()
        entry_us = (time.perf_counter() - clock) / samples * 1e6
        latencies = []
        for n in range(200):
            clock = time.perf_counter()
            log.append(event(n))
            latencies.append((time.perf_counter() - clock) * 1000)

    print(
        f"durable appends/s, {args.threads} threads x {args.per_thread} appends "
        "(or the same count submitted by one thread with a window in flight):"
    )
    for name, rate in rows:
        print(f"  {name:<44} {rate:>10,.0f}/s   ({rate / rows[0][1]:.1f}x plain SQLite)")
    print(
        f"verify {report.size:,} entries: {verify_seconds:.1f} s (building them took {built:.0f} s)"
    )
    print(
        f"per request: build + encode an entry {entry_us:.1f} us; one append, alone, "
        f"p50 {statistics.median(latencies):.2f} ms"
    )


if __name__ == "__main__":
    main()
