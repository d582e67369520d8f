"""A large synthetic catalog for benchmarks: real store rows, clustered embeddings.

Embedding 100k photos would take hours on this CPU, and query latency does not
depend on what the stored vectors depict, so rows get clustered random unit
vectors tagged with the real model's id; one small shared image file backs them.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jewelsearch.storage import Catalog
from jewelsearch.storage.images import sha256_bytes

CATEGORIES = ["ring", "necklace", "pendant", "earrings", "bracelet"]
METALS = ["yellow gold", "rose gold", "white gold", "platinum", "silver"]
GEMS = ["diamond", "ruby", "sapphire blue", "emerald", "pearl", "amethyst", None]


def clustered(n: int, dim: int, seed: int, clusters: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(home: Path, n: int, model_id: str, dim: int, seed: int = 0, instance_key: str | None = None,
          instance_dim: int = 0, text_key: str | None = None) -> Catalog:
    """``instance_key`` and ``instance_dim``: also store an instance vector per row under that key.
    ``text_key``: also store an item text vector per row (``dim``; clustered like the embeddings,
    standing in for the text tower, which at 100k rows would take minutes)."""
    catalog = Catalog.open(home / "catalog.db", home / "images")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (230, 200, 120)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    sha = sha256_bytes(data)
    rel = catalog.images.save(data, sha, "jpg")
    vectors = clustered(n, dim, seed)
    rng = np.random.default_rng(seed)
    now = time.time()
    with catalog.database.write() as conn:
        conn.executemany(
            "INSERT INTO items (id, title, category, metal, gemstone, price, currency, image_path, image_sha256,"
            " attributes, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(i + 1, _title(i), CATEGORIES[i % 5], METALS[(i // 5) % 5], GEMS[(i // 25) % 7],
              float(rng.integers(50, 5000)), "USD", rel, sha, json.dumps({}), now, now) for i in range(n)])
        conn.executemany("INSERT INTO embeddings (item_id, model_id, dim, vector) VALUES (?,?,?,?)",
                         [(i + 1, model_id, dim, vectors[i].tobytes()) for i in range(n)])
        if instance_key is not None:
            for start in range(0, n, 20_000):  # 1280-d vectors: a few at a time keeps memory flat
                chunk = clustered(min(20_000, n - start), instance_dim, seed + 1 + start)
                conn.executemany("INSERT INTO embeddings (item_id, model_id, dim, vector) VALUES (?,?,?,?)",
                                 [(start + j + 1, instance_key, instance_dim, chunk[j].tobytes())
                                  for j in range(len(chunk))])
        if text_key is not None:
            texts = clustered(n, dim, seed + 7)
            conn.executemany("INSERT INTO embeddings (item_id, model_id, dim, vector) VALUES (?,?,?,?)",
                             [(i + 1, text_key, dim, texts[i].tobytes()) for i in range(n)])
        catalog.database.bump_version(conn)
    catalog.lexical.rebuild()  # the rows above bypass ItemStore, which writes the word index
    return catalog


def _title(i: int) -> str:
    """A shop-like title from the row's attributes, so word search has real work to do."""
    gem = GEMS[(i // 25) % 7]
    stone = {"sapphire blue": "blue sapphire"}.get(gem, gem)
    return f"{stone + ' ' if stone else ''}{CATEGORIES[i % 5]} in {METALS[(i // 5) % 5]}".capitalize()
