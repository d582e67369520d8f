"""Rate-limit counters shared by the processes of one machine, in a SQLite file.

Why: ``serve --replicas N`` (the local engine) answers from N reader processes, and counters
kept in each process's memory let a client that lands on several readers make up to N times
each rate. A local pool has no Redis; the supervisor makes a SQLite file in a private temporary
folder (never in the home: counters need no backup and die with the pool) and every worker's
limiter counts there (``rate_limit_storage = "jewelsearch-shared:///path/counters.db"``).

Each check-and-count is one ``BEGIN IMMEDIATE`` transaction, so two processes never both let
the same last request in. The file is in WAL mode with ``synchronous = OFF``: a machine crash
may lose counts, which only forgives some requests. The window arithmetic is
``LocalCounters``'; only where the counters live differs.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Callable

from jewelsearch.server.rate_limit_store import SWEEP_SECONDS, LocalCounters

SCHEME = "jewelsearch-shared"
BUSY_MS = 2000  # how long a worker waits for another's transaction (each holds it well under 1 ms)


class SharedCounters(LocalCounters):
    """``LocalCounters`` with its dictionary replaced by a table; the lock by a transaction."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 clock: Callable[[], float] = time.time, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, clock=clock, **options)
        path = (uri or "").split("://", 1)[-1]
        if not path or path == uri:
            raise ValueError(f"{SCHEME}:// needs a file path, e.g. {SCHEME}:///tmp/pool/counters.db")
        self.path = path
        self._local = threading.local()
        self._lock = _Transaction(self._connection)
        with self._lock as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS counters "
                         "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are begun and ended explicitly (``_Transaction``).
            conn = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None,
                                   check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn = conn
        return conn

    # -- the dictionary's operations, as SQL, inside the caller's transaction ----------------------
    def _live(self, key: str, now: float) -> tuple[int, float] | None:
        conn = self._connection()
        row = conn.execute("SELECT count, expires FROM counters WHERE key = ?", (key,)).fetchone()
        if row is not None and row[1] <= now:
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))
            return None
        return (int(row[0]), float(row[1])) if row else None

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        entry = self._live(key, now)
        count, expires = (amount, now + expiry) if entry is None else (entry[0] + amount, entry[1])
        self._connection().execute("INSERT INTO counters(key, count, expires) VALUES (?, ?, ?) "
                                   "ON CONFLICT(key) DO UPDATE SET count = excluded.count, "
                                   "expires = excluded.expires", (key, count, expires))
        return count

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._connection().execute("DELETE FROM counters WHERE expires <= ?", (now,))
        self._next_sweep = now + SWEEP_SECONDS

    # -- the calls that touched the dictionary directly -----------------------------------------
    def decr(self, key: str, amount: int = 1) -> int:
        now = self._clock()
        with self._lock as conn:
            entry = self._live(key, now)
            if entry is None:
                return 0
            count = max(entry[0] - amount, 0)
            conn.execute("UPDATE counters SET count = ? WHERE key = ?", (count, key))
            return count

    def clear(self, key: str) -> None:
        with self._lock as conn:
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))

    def reset(self) -> int:
        with self._lock as conn:
            return conn.execute("DELETE FROM counters").rowcount

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM counters").fetchone()[0])


class _Transaction:
    """``with`` block = one ``BEGIN IMMEDIATE`` transaction on the calling thread's connection,
    committed on success and rolled back on an error. Stands in for ``LocalCounters``' lock."""

    def __init__(self, connection: Callable[[], sqlite3.Connection]):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, kind, error, trace) -> None:
        self.connection().execute("ROLLBACK" if kind else "COMMIT")
