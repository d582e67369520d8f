"""One consistent copy of the catalog database while writers keep writing, and what it holds.

``snapshot_database`` uses SQLite's online backup API in a single step: the copy is read inside
one read transaction, so it is the database as of one commit, and in WAL mode the server's
writers are not blocked meanwhile. (A backup in several steps would restart whenever another
connection writes, and might never finish under load.) The copy is switched to the rollback
journal, so it is one self-contained file.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SnapshotFacts:
    """What a database copy holds, read from the copy itself."""

    schema_version: int
    catalog_version: int
    items: int
    events: int
    image_paths: frozenset[str]  # relative to the images folder
    model_embeddings: dict[str, int]  # model id -> embedded items


def snapshot_database(source: Path, target: Path) -> None:
    """Copy the database at ``source`` to the new file ``target`` as of one commit."""
    if not Path(source).is_file():
        raise FileNotFoundError(f"no catalog database at {source}")
    with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(target)) as dst:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst)  # pages=-1: everything in one step, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")


def read_facts(path: Path) -> SnapshotFacts:
    """The facts of a database copy, opened read-only (nothing is written next to it)."""
    uri = f"file:{Path(path).absolute()}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return SnapshotFacts(
            schema_version=int(meta.get("schema_version") or 0),
            catalog_version=int(meta.get("catalog_version") or 0),
            items=conn.execute("SELECT COUNT(*) FROM items").fetchone()[0],
            events=conn.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            image_paths=frozenset(r[0] for r in conn.execute("SELECT DISTINCT image_path FROM items")),
            model_embeddings=dict(conn.execute(
                "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall()))


def integrity_problem(path: Path) -> str | None:
    """SQLite's own quick check of a database copy: None when it is sound, else what is wrong."""
    uri = f"file:{Path(path).absolute()}?mode=ro&immutable=1"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows[:5])
