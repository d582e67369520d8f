"""Embedding vectors, one per (item, key), stored as float32 blobs.

A key is a model id (the text-aligned embedding that model makes), or a model id, ``#`` and a
vector space of that model (``space_key``: the instance vectors of its instance head). A
derived key belongs to its model: it is never counted as another model's embeddings.

>>> space_key("jewelclip-lite0-ab12", "instance-0123456789ab")
'jewelclip-lite0-ab12#instance-0123456789ab'
>>> model_of("jewelclip-lite0-ab12#instance-0123456789ab")
'jewelclip-lite0-ab12'
"""

from __future__ import annotations

import sqlite3
from typing import Collection, Iterable

import numpy as np

from jewelsearch.storage.db import Database


SPACE_SEPARATOR = "#"


def space_key(model_id: str, space_id: str) -> str:
    """The storage key of one of a model's further vector spaces."""
    return f"{model_id}{SPACE_SEPARATOR}{space_id}"


def model_of(key: str) -> str:
    """The model a storage key belongs to."""
    return key.split(SPACE_SEPARATOR, 1)[0]


class EmbeddingStore:
    def __init__(self, database: Database):
        self.database = database

    def put(self, conn: sqlite3.Connection, item_id: int, model_id: str, vector: np.ndarray) -> None:
        vec = np.ascontiguousarray(vector, dtype=np.float32).ravel()
        if not np.all(np.isfinite(vec)):
            raise ValueError("refusing to store a non-finite embedding")
        conn.execute(
            "INSERT INTO embeddings(item_id, model_id, dim, vector) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(item_id, model_id) DO UPDATE SET dim = excluded.dim, vector = excluded.vector",
            (item_id, model_id, int(vec.shape[0]), vec.tobytes()))

    def delete(self, conn: sqlite3.Connection, item_id: int, key: str) -> bool:
        """Drop one item's vector under ``key`` (an item whose text no longer gives one)."""
        return conn.execute("DELETE FROM embeddings WHERE item_id = ? AND model_id = ?",
                            (item_id, key)).rowcount > 0

    def delete_space(self, conn: sqlite3.Connection, key: str) -> int:
        """Drop every vector under ``key`` (a space an earlier recipe made)."""
        return conn.execute("DELETE FROM embeddings WHERE model_id = ?", (key,)).rowcount

    def get(self, item_id: int, model_id: str) -> np.ndarray | None:
        row = self.database.conn.execute(
            "SELECT vector FROM embeddings WHERE item_id = ? AND model_id = ?",
            (item_id, model_id)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def find_by_image(self, image_sha256: str, model_id: str) -> np.ndarray | None:
        """The vector this model already made for an item showing the same image, if any:
        ingest reuses it instead of embedding the photo again."""
        row = self.database.conn.execute(
            "SELECT e.vector FROM embeddings e JOIN items i ON i.id = e.item_id "
            "WHERE i.image_sha256 = ? AND e.model_id = ? LIMIT 1", (image_sha256, model_id)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def get_many(self, item_ids: Iterable[int], model_id: str) -> dict[int, np.ndarray]:
        ids = [int(i) for i in item_ids]
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            cur = self.database.conn.execute(
                f"SELECT item_id, vector FROM embeddings WHERE model_id = ? AND item_id IN ({marks})",
                (model_id, *chunk))
            for item_id, blob in cur:
                out[item_id] = np.frombuffer(blob, dtype=np.float32)
        return out

    def all_for_model(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64[n], vectors float32[n, d]) for every live item, ordered by id."""
        cur = self.database.conn.execute(
            "SELECT e.item_id, e.vector FROM embeddings e JOIN items i ON i.id = e.item_id "
            "WHERE e.model_id = ? ORDER BY e.item_id", (model_id,))
        ids, blobs = [], []
        for item_id, blob in cur:
            ids.append(item_id)
            blobs.append(blob)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1)
        return np.asarray(ids, dtype=np.int64), vectors.copy()

    def ids_for(self, key: str) -> set[int]:
        """Ids of the live items with a vector under this key (no vectors read)."""
        return {r[0] for r in self.database.conn.execute(
            "SELECT e.item_id FROM embeddings e JOIN items i ON i.id = e.item_id WHERE e.model_id = ?", (key,))}

    def model_ids(self) -> dict[str, int]:
        """How many text-aligned embeddings each model has made (its further spaces aside)."""
        return {r[0]: r[1] for r in self.database.conn.execute(
            "SELECT model_id, COUNT(*) FROM embeddings WHERE instr(model_id, ?) = 0 GROUP BY model_id",
            (SPACE_SEPARATOR,))}

    def spaces_of(self, model_id: str) -> dict[str, int]:
        """How many vectors each of this model's further spaces holds, by storage key."""
        return {r[0]: r[1] for r in self.database.conn.execute(
            "SELECT model_id, COUNT(*) FROM embeddings WHERE substr(model_id, 1, ?) = ? GROUP BY model_id",
            (len(model_id) + 1, model_id + SPACE_SEPARATOR))}

    def count(self, key: str) -> int:
        """How many vectors are stored under this key."""
        return self.database.conn.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (key,)).fetchone()[0]

    def missing_for_model(self, key: str, among: str | None = None) -> list[int]:
        """Items with no vector under ``key``; with ``among``, only those that have one under
        ``among`` (items with a text-aligned embedding but no instance vector)."""
        if among is None:
            return [r[0] for r in self.database.conn.execute(
                "SELECT id FROM items WHERE id NOT IN "
                "(SELECT item_id FROM embeddings WHERE model_id = ?) ORDER BY id", (key,))]
        return [r[0] for r in self.database.conn.execute(
            "SELECT e.item_id FROM embeddings e JOIN items i ON i.id = e.item_id WHERE e.model_id = ? AND "
            "e.item_id NOT IN (SELECT item_id FROM embeddings WHERE model_id = ?) ORDER BY e.item_id",
            (among, key))]

    def delete_other_models(self, conn: sqlite3.Connection, model_id: str,
                            keep_spaces: Collection[str] | None = None) -> int:
        """Delete every other model's vectors. This model's further spaces are kept: all of them,
        or with ``keep_spaces`` only those storage keys (the others came from an older head)."""
        if keep_spaces is None:
            cur = conn.execute("DELETE FROM embeddings WHERE model_id != ? AND substr(model_id, 1, ?) != ?",
                               (model_id, len(model_id) + 1, model_id + SPACE_SEPARATOR))
            return cur.rowcount
        keep = [model_id, *keep_spaces]
        marks = ",".join("?" * len(keep))
        cur = conn.execute(f"DELETE FROM embeddings WHERE model_id NOT IN ({marks})", keep)
        return cur.rowcount
