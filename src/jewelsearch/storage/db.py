"""Connections and versioned schema migrations.

One SQLite file in WAL mode so readers never wait for the writer.  Each thread
gets its own connection (sqlite3 connections must not be shared across threads
mid-transaction); writes are serialised by one lock so two server threads never
race for the write lock and hit SQLITE_BUSY.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from jewelsearch.storage import lexical


class _NoPandasForSqliteUtils(importlib.abc.MetaPathFinder):
    """Refuses ``import pandas`` to sqlite-utils' own module code, and to nothing else.

    sqlite-utils imports pandas whenever it is installed, only to map ``pandas.Timestamp``
    values to TEXT when it creates a table from Python values; the store creates its tables in
    SQL and never passes pandas values. Importing pandas (and pyarrow through it) is a sixth of
    a command's imports (``docs/benchmarks.md``, start-up). The refusal looks at the importing
    thread's own stack, so another thread that imports pandas meanwhile gets it as usual, and
    code that wants pandas later imports it normally."""

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get("__name__") == "sqlite_utils.db":
                raise ModuleNotFoundError("pandas is not given to sqlite-utils in jewelsearch", name=name)
            frame = frame.f_back
        return None


def _import_sqlite_utils():
    guard = _NoPandasForSqliteUtils()
    sys.meta_path.insert(0, guard)
    try:
        import sqlite_utils
    finally:
        sys.meta_path.remove(guard)
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

log = logging.getLogger(__name__)

# Each entry upgrades the schema by one version; never edit a released step. A step is an
# SQL script, or a function run in the migration's transaction (for work SQL cannot do).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: initial schema
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sku TEXT UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        category TEXT,
        metal TEXT,
        gemstone TEXT,
        stone_shape TEXT,
        color TEXT,
        price REAL,
        currency TEXT NOT NULL DEFAULT 'USD',
        url TEXT,
        image_path TEXT NOT NULL,
        image_sha256 TEXT NOT NULL,
        source_path TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX items_category ON items(category);
    CREATE INDEX items_metal ON items(metal);
    CREATE INDEX items_gemstone ON items(gemstone);
    CREATE INDEX items_price ON items(price);
    CREATE INDEX items_sha ON items(image_sha256);
    CREATE UNIQUE INDEX items_source ON items(source_path) WHERE source_path IS NOT NULL;
    CREATE TABLE embeddings (
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (item_id, model_id)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        item_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        weight REAL NOT NULL
    );
    CREATE INDEX events_user ON events(user_id, ts);
    CREATE INDEX events_item ON events(item_id);
    """,
    # 2: the lexical (FTS5) index over each item's words, filled from the existing items
    lexical.create_table,
    # 3: which item each write to items touched, by items_version, so a reader holding item
    # fields in memory (search/ranking_columns.py) re-reads only what changed
    """
    CREATE TABLE item_changes (
        version INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL
    );
    """,
    # 4: a category's pieces by price, as a shop front lists them (``ItemStore.list``): read in
    # order from this index instead of sorting every piece of the category (100k items, 20k
    # rings: 0.08 against 12.6 ms a page)
    """
    CREATE INDEX items_category_price ON items(category, price);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
# Address space a connection may map of the database file (not memory it takes: the pages are
# the operating system's file cache, shared by every connection).
MMAP_BYTES = 1 << 30


class Database:
    """Per-thread sqlite-utils handles on one file, plus a write lock."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten with zeros, so an erased shopper's events do not linger
        # in free space. It must be on for every write, not just the erasure: a b-tree page
        # split leaves stale copies of moved rows behind unless it is.
        conn.execute("PRAGMA secure_delete=ON")
        # Reads map the file instead of copying each page through a read() call into every
        # connection's own 2 MB cache: a text query reads a few hundred scattered item rows,
        # which took 0.43 ms against 0.79 ms for 200 rows at 100k items (docs/benchmarks.md).
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        handle = getattr(self._local, "db", None)
        if handle is None:
            handle = sqlite_utils.Database(self.conn)
            self._local.db = handle
        return handle

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it commits or none of it does."""
        with self._write_lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database file and empty it; True when it could
        (a reader holding an old snapshot makes SQLite leave the log as it is)."""
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        cur = self.conn.execute(sql, params)
        cols = [c[0] for c in cur.description or ()]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: tuple | dict = ()):
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def get_meta(self, key: str) -> str | None:
        return self.scalar("SELECT value FROM meta WHERE key = ?", (key,))

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def bump_version(self, conn: sqlite3.Connection) -> None:
        """Count every change to the set of embedded items.

        The index manifest records the version it was built at; a mismatch on
        open means the index missed a write (e.g. a crash) and must be rebuilt.
        """
        conn.execute("INSERT INTO meta(key, value) VALUES('catalog_version', '1') "
                     "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def catalog_version(self) -> int:
        return int(self.get_meta("catalog_version") or 0)

    def _migrate(self) -> None:
        with self.write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {current}, newer than this "
                    f"jewelsearch ({SCHEMA_VERSION}); upgrade jewelsearch")
            for version in range(current, SCHEMA_VERSION):
                log.info("migrating %s to schema version %d", self.path, version + 1)
                step = MIGRATIONS[version]
                if callable(step):
                    step(conn)
                else:
                    for statement in _split_sql(step):
                        conn.execute(statement)
                self.set_meta(conn, "schema_version", str(version + 1))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._local.db = None


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_database(path: Path | str) -> Database:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Database(path)
