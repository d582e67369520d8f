"""Embedding vectors, one per (item, model), stored as float32 blobs."""

from __future__ import annotations

import sqlite3
from typing import Iterable

import numpy as np

from jewelsearch.storage.db import Database


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

    def model_ids(self) -> dict[str, int]:
        """How many embeddings each model has made."""
        return {r[0]: r[1] for r in self.database.conn.execute(
            "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id")}

    def missing_for_model(self, model_id: str) -> list[int]:
        return [r[0] for r in self.database.conn.execute(
            "SELECT id FROM items WHERE id NOT IN "
            "(SELECT item_id FROM embeddings WHERE model_id = ?) ORDER BY id", (model_id,))]

    def delete_other_models(self, conn: sqlite3.Connection, model_id: str) -> int:
        cur = conn.execute("DELETE FROM embeddings WHERE model_id != ?", (model_id,))
        return cur.rowcount
