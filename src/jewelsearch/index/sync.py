"""Keep the FAISS index in agreement with the store.

The store is the source of truth.  On open, the saved index is used only if
its manifest names the same model, dimension, item count and catalog version
as the store; otherwise it is rebuilt from stored embeddings (never by
re-encoding images).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jewelsearch.index import IndexManifest, VectorIndex, choose_kind, describe_index, load_index, save_index
from jewelsearch.index.kinds import IndexChoice
from jewelsearch.storage import Catalog

log = logging.getLogger(__name__)


def vector_source_for(catalog: Catalog, model_id: str, dim: int):
    """Exact vectors by item id, read from the store (used by IVF-PQ re-ranking)."""
    def source(ids: np.ndarray) -> np.ndarray:
        found = catalog.embeddings.get_many(ids.tolist(), model_id)
        # An item deleted between its commit and the index update has no vector any
        # more: score it zero; the service drops ids without a row anyway.
        missing = np.zeros(dim, dtype=np.float32)
        rows = [found.get(int(i), missing) for i in ids]
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return source


def build_from_store(catalog: Catalog, model_id: str, dim: int, *, kind: str = "auto",
                     memory_budget_bytes: int = 2 << 30) -> VectorIndex:
    ids, vectors = catalog.embeddings.all_for_model(model_id)
    if len(ids) and vectors.shape[1] != dim:
        raise ValueError(f"stored embeddings have dimension {vectors.shape[1]}, model has {dim}")
    choice = choose_kind(len(ids), dim, memory_budget_bytes, kind)
    source = vector_source_for(catalog, model_id, dim)
    if len(ids) == 0:
        if choice.kind == "ivfpq":
            choice = IndexChoice("flat")
        return VectorIndex(dim, choice, vector_source=source)
    return VectorIndex.build(ids, vectors, choice, vector_source=source)


def behind_only(manifest: IndexManifest, model_id: str, dim: int, kind: str, version: int) -> bool:
    """Whether a saved index differs from the store only by being saved earlier."""
    return (manifest.model_id == model_id and manifest.dim == dim and manifest.catalog_version <= version
            and (kind == "auto" or manifest.kind == kind))


def open_index(catalog: Catalog, directory: Path, model_id: str, dim: int, *,
               kind: str = "auto", memory_budget_bytes: int = 2 << 30, persist: bool = True,
               accept_behind: bool = False) -> tuple[VectorIndex, IndexManifest, bool]:
    """(index, manifest, rebuilt) for the store's current state. ``model_id`` is the storage
    key of the vectors indexed: a model id, or one of its further spaces (``space_key``).
    ``persist`` False keeps a rebuilt index in memory only (the home's writer saves its own).
    ``accept_behind`` (a read replica only): a save of the same model, width and kind made at an
    earlier catalog version is used as it is."""
    version = catalog.database.catalog_version()
    stored = catalog.embeddings.count(model_id)
    loaded = load_index(directory, vector_source_for(catalog, model_id, dim))
    if loaded is not None:
        index, manifest = loaded
        reasons = []
        if manifest.model_id != model_id:
            reasons.append(f"model {manifest.model_id} != {model_id}")
        if manifest.dim != dim:
            reasons.append(f"dim {manifest.dim} != {dim}")
        if manifest.count != stored:
            reasons.append(f"count {manifest.count} != {stored} stored")
        if manifest.catalog_version != version:
            reasons.append(f"catalog version {manifest.catalog_version} != {version}")
        if kind != "auto" and manifest.kind != kind:
            reasons.append(f"kind {manifest.kind} != {kind}")
        if not reasons:
            return index, manifest, False
        if accept_behind and not persist and behind_only(manifest, model_id, dim, kind, version):
            log.debug("using the saved index at catalog version %d (the store is at %d)",
                      manifest.catalog_version, version)
            return index, manifest, False
        # A read-only opener (a local read replica) sees this whenever the writer has not saved yet.
        log.log(logging.WARNING if persist else logging.INFO,
                "index disagrees with the store (%s); rebuilding from stored embeddings", "; ".join(reasons))
    index = build_from_store(catalog, model_id, dim, kind=kind, memory_budget_bytes=memory_budget_bytes)
    if not persist:
        return index, describe_index(index, model_id=model_id, catalog_version=version), True
    manifest = save_index(index, directory, model_id=model_id, catalog_version=version)
    return index, manifest, True
