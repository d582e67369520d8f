"""The instance vectors' side of the service: their index beside the main one, and whether
image queries may rank by them.

The instance index lives in its own snapshot folder inside the index directory
(``index/instance/``), saved and checked against the store under the same manifest rules as the
main index (``index/sync.py``), with its kind chosen the same way for its own dimension. Its
storage key is the model id plus the head's space id, so a changed head starts a new space and
``jewelsearch index rebuild`` fills it from the stored photos.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from jewelsearch.embed.instance import InstanceHead
from jewelsearch.index import save_index
from jewelsearch.index.sync import build_from_store, open_index
from jewelsearch.search.options import IndexSettings
from jewelsearch.search.state import InstanceSpace, ServiceState
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import space_key

INSTANCE_DIR = "instance"
log = logging.getLogger(__name__)


def instance_index_dir(index_dir: Path) -> Path:
    """Where the instance index's snapshots live (the main index's own versions sit beside it)."""
    return Path(index_dir) / INSTANCE_DIR


def is_complete(catalog: Catalog, model_id: str, key: str) -> bool:
    """Whether every item with a text-aligned embedding also has an instance vector."""
    return not catalog.embeddings.missing_for_model(key, among=model_id)


def open_instance_space(catalog: Catalog, index_dir: Path, model_id: str, head: InstanceHead,
                        settings: IndexSettings) -> InstanceSpace:
    """The saved instance index where it agrees with the store, else one rebuilt from stored vectors."""
    key = space_key(model_id, head.space_id)
    index, manifest, _ = open_index(catalog, instance_index_dir(index_dir), key, head.dim, kind=settings.kind,
                                    memory_budget_bytes=settings.memory_budget_bytes, persist=settings.persist,
                                    accept_behind=settings.accept_saved_behind_store)
    missing = len(catalog.embeddings.missing_for_model(key, among=model_id))
    if missing:
        # Said once on opening: a catalog embedded before this head (or before any) answers image
        # queries by the text-aligned vectors, which would otherwise go unnoticed.
        log.warning("%d items have no instance vector for %s (a catalog embedded before this instance head): "
                    "image queries rank by the text-aligned vectors until `jewelsearch index rebuild`", missing, key)
    return InstanceSpace(head, key, index, manifest, not missing)


def rebuilt_space(state: ServiceState) -> InstanceSpace | None:
    """A fresh instance index from the stored vectors (the caller swaps it in and saves)."""
    space = state.instance
    if space is None:
        return None
    settings = state.index_settings
    index = build_from_store(state.catalog, space.key, space.head.dim, kind=settings.kind,
                             memory_budget_bytes=settings.memory_budget_bytes)
    return dataclasses.replace(space, index=index,
                               complete=is_complete(state.catalog, state.encoder.model_id, space.key))


def save_space(space: InstanceSpace, index_dir: Path, catalog_version: int) -> InstanceSpace:
    manifest = save_index(space.index, instance_index_dir(index_dir), model_id=space.key,
                          catalog_version=catalog_version)
    return dataclasses.replace(space, manifest=manifest)


def missing_instance_vectors(state: ServiceState) -> list[int]:
    """Items without an instance vector (empty without an instance head)."""
    if state.instance is None:
        return []
    return state.catalog.embeddings.missing_for_model(state.instance.key)


def describe(state: ServiceState) -> dict | None:
    """What ``stats`` and ``index info`` say about the instance vectors (None without a head)."""
    space = state.instance
    if space is None:
        return None
    return {"space": space.key, "dim": space.index.dim, "indexed": len(space.index), "index_kind": space.index.kind,
            "missing": len(missing_instance_vectors(state)),
            "image_queries_use_it": space.complete}
