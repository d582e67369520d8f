"""Items finished elsewhere (embedded and recognised by a Ray worker), written into the store.

A worker runs the local ingest on its own scratch catalog (``search/ray_ingest.py``), so each
item arrives here as the local ingest left it: its fields (recognition's fills included), its
attributes, its stored photo bytes and every vector the model made for it, keyed by storage
key. This module writes a batch of them in one transaction, as ``Ingestor.add`` does: the
photo file first, then the row and its vectors, then the catalog version. The indexes are not
touched here; the caller rebuilds them from the stored vectors once the run is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jewelsearch.errors import JewelsearchError
from jewelsearch.storage import Catalog
from jewelsearch.storage.items import ITEM_FIELDS

log = logging.getLogger(__name__)


@dataclass
class FinishedItem:
    source_path: str
    sha256: str
    fields: dict[str, Any]
    attributes: dict[str, Any]
    image: bytes
    ext: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # storage key -> vector
    dropped: tuple[str, ...] = ()  # storage keys the item has no vector in (no words: no text vector)


def finished_from_row(row: dict[str, Any], image: bytes, ext: str, vectors: dict[str, np.ndarray],
                      spaces: tuple[str, ...]) -> FinishedItem:
    """A stored item row (``Items.get``) of a scratch catalog as a finished item; ``spaces`` are
    the storage keys the model writes (an earlier version of the item may hold a stale one)."""
    fields = {k: row[k] for k in ITEM_FIELDS if row.get(k) is not None}
    return FinishedItem(row["source_path"], row["image_sha256"], fields, dict(row["attributes"]),
                        image, ext, vectors, tuple(k for k in spaces if k not in vectors))


def write_finished(catalog: Catalog, items: list[FinishedItem]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Write ``items`` in one transaction; where that fails on one item's data (a sku already
    taken), each item in its own, so the rest still land. Returns (counts by status, and
    (source path, reason) for the items that could not be written)."""
    try:
        return _write(catalog, items), []
    except JewelsearchError:
        counts = {"added": 0, "updated": 0}
        failed = []
        for item in items:
            try:
                for status, n in _write(catalog, [item]).items():
                    counts[status] += n
            except JewelsearchError as exc:
                failed.append((item.source_path, str(exc)))
        return counts, failed


def _write(catalog: Catalog, items: list[FinishedItem]) -> dict[str, int]:
    counts = {"added": 0, "updated": 0}
    if not items:
        return counts
    with catalog.database.write() as conn:
        for item in items:
            rel = catalog.images.save(item.image, item.sha256, item.ext)
            existing = catalog.items.find_by_source(item.source_path)
            if existing is None:
                item_id = catalog.items.insert(conn, item.fields, image_path=rel, image_sha256=item.sha256,
                                               source_path=item.source_path, attributes=item.attributes)
                counts["added"] += 1
            else:
                item_id = existing["id"]
                catalog.items.update(conn, item_id, item.fields, image_path=rel, image_sha256=item.sha256,
                                     attributes=item.attributes)
                counts["updated"] += 1
            for key, vector in item.vectors.items():
                catalog.embeddings.put(conn, item_id, key, vector)
            if existing is not None:
                for key in item.dropped:
                    catalog.embeddings.delete(conn, item_id, key)
        catalog.database.bump_version(conn)
    return counts
