"""The item text vectors' side of the service: their index beside the main one, what is
missing, and the text-field similarity text search reads.

The index lives in its own snapshot folder inside the index directory (``index/item_text/``),
saved and checked against the store under the same manifest rules as the main index
(``index/sync.py``). Its storage key is the model id plus the recipe's space id
(``embed/item_text.py``), so a changed recipe or model starts a new space and
``jewelsearch index rebuild`` fills it from the items' stored words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import numpy as np

from jewelsearch.embed.item_text import item_text, text_space_id
from jewelsearch.index import VectorIndex, save_index
from jewelsearch.index.sync import build_from_store, open_index
from jewelsearch.search.options import IndexSettings
from jewelsearch.search.state import ItemTextSpace, ServiceState
from jewelsearch.storage import Catalog
from jewelsearch.storage.embeddings import space_key

ITEM_TEXT_DIR = "item_text"
MISSING_CHUNK = 900


def item_text_index_dir(index_dir: Path) -> Path:
    return Path(index_dir) / ITEM_TEXT_DIR


def item_text_key(model_id: str) -> str:
    return space_key(model_id, text_space_id())


def open_item_text_space(catalog: Catalog, index_dir: Path, model_id: str, dim: int,
                         settings: IndexSettings) -> ItemTextSpace:
    """The saved text index where it agrees with the store, else one rebuilt from stored vectors."""
    key = item_text_key(model_id)
    index, manifest, _ = open_index(catalog, item_text_index_dir(index_dir), key, dim, kind=settings.kind,
                                    memory_budget_bytes=settings.memory_budget_bytes, persist=settings.persist,
                                    accept_behind=settings.accept_saved_behind_store)
    return ItemTextSpace(key, index, manifest)


def rebuilt_space(state: ServiceState) -> ItemTextSpace | None:
    """A fresh text index from the stored vectors (the caller swaps it in and saves)."""
    space = state.item_text
    if space is None:
        return None
    settings = state.index_settings
    index = build_from_store(state.catalog, space.key, state.encoder.dim, kind=settings.kind,
                             memory_budget_bytes=settings.memory_budget_bytes)
    return dataclasses.replace(space, index=index)


def save_space(space: ItemTextSpace, index_dir: Path, catalog_version: int) -> ItemTextSpace:
    manifest = save_index(space.index, item_text_index_dir(index_dir), model_id=space.key,
                          catalog_version=catalog_version)
    return dataclasses.replace(space, manifest=manifest)


def missing_item_texts(catalog: Catalog, key: str) -> dict[int, str]:
    """Items with words of their own but no text vector under ``key``, with their text."""
    ids = catalog.embeddings.missing_for_model(key)
    out: dict[int, str] = {}
    for start in range(0, len(ids), MISSING_CHUNK):
        for item_id, row in catalog.items.get_many(ids[start:start + MISSING_CHUNK]).items():
            if text := item_text(row):
                out[item_id] = text
    return out


def missing_item_text_vectors(state: ServiceState) -> list[int]:
    """Items that should have a text vector and have none (empty without a text space)."""
    if state.item_text is None:
        return []
    return sorted(missing_item_texts(state.catalog, state.item_text.key))


def describe(state: ServiceState) -> dict | None:
    """What ``stats`` and ``index info`` say about the item text vectors. Which items lack one
    (it reads every wordless item's row) is ``jewelsearch check``'s to say, not every stats call's."""
    space = state.item_text
    if space is None:
        return None
    return {"space": space.key, "stored": state.catalog.embeddings.count(space.key), "indexed": len(space.index),
            "index_kind": space.index.kind, "text_field_weight": state.hybrid.text_field_weight}


def blended_semantic(query: np.ndarray, image_index: VectorIndex, text_index: VectorIndex,
                     image_scores: dict[int, float], pool: int, weight: float,
                     allowed_ids: Iterable[int] | None, extra: Iterable[int] = ()) -> dict[int, float]:
    """Each candidate's semantic score, ``(1 - weight) * image_sim + weight * text_field_sim``.

    The candidates are the image search's pool (``image_scores``), the best ``pool`` text-field
    matches and ``extra`` (the lexical list). A candidate missing from one of the two searches
    gets that similarity from its stored vector; one with no text vector (the shop gave no
    words) keeps its image similarity alone, so photos-only items are neither helped nor hurt.
    """
    (text_ids, text_sims), = text_index.search(query, pool, allowed_ids=allowed_ids)
    text_scores = dict(zip(text_ids.tolist(), text_sims.tolist()))
    candidates = set(image_scores) | set(text_scores) | set(extra)
    image_scores = dict(image_scores)
    image_scores.update(_similarities(query, image_index, candidates - image_scores.keys()))
    text_scores.update(_similarities(query, text_index, candidates - text_scores.keys()))
    return {item: (1.0 - weight) * image_scores[item] + weight * text_scores.get(item, image_scores[item])
            for item in candidates if item in image_scores}


def _similarities(query: np.ndarray, index: VectorIndex, ids: set[int]) -> dict[int, float]:
    present = [item for item in ids if item in index]
    if not present:
        return {}
    sims = index.vectors_for(present) @ np.asarray(query, dtype=np.float32).ravel()
    return dict(zip(present, sims.tolist()))
