"""The blended vectors' side of the service: one index whose inner product with a text query's
vector is that query's whole semantic score.

A text query scores an item ``(1 − a)·(q·image) + a·(q·text)`` (``q·image`` for an item the
shop gave no words), ``a`` being ``text_field_weight``. That is ``q·b`` for the blended vector
``b = (1 − a)·image + a·text`` (``b = image`` without words), so one search over the ``b``
gives the semantic candidates and their scores at once, where the two-index way
(``item_text_space.blended_semantic``) searches two indexes and looks up stored vectors
(docs/experiments/2026-12-07-blended-text-candidates.md: same R-precision@10 on all 684
labelled queries, the semantic step 0.14× the time at 100k items).

The blended vectors are derived, not stored: they are made from the stored image and text
vectors when the index is built, and from the two indexes' vectors when a write changes an
item. The index lives in its own snapshot folder (``index/blended/``) under the same manifest
rules as the others (``index/sync.py``); its manifest's key names the image model, the text
space and the weight, so a saved index made with another weight (or recipe) disagrees with
the service and is rebuilt when the service opens.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from jewelsearch.index import VectorIndex, choose_kind, describe_index, load_index, save_index
from jewelsearch.index.kinds import IndexChoice
from jewelsearch.index.sync import behind_only
from jewelsearch.search.options import IndexSettings
from jewelsearch.search.state import BlendedSpace, ServiceState
from jewelsearch.storage import Catalog

log = logging.getLogger(__name__)

BLENDED_DIR = "blended"
CHUNK = 4096  # items read from the store at once while building or checking
STALE_TOLERANCE = 1e-4  # a blended vector further than this from its recomputed value is stale


def blended_index_dir(index_dir: Path) -> Path:
    return Path(index_dir) / BLENDED_DIR


def blended_key(image_key: str, text_key: str, weight: float) -> str:
    """The manifest key: what the vectors are made of, and with which weight.

    >>> blended_key("m", "m#text-1", 0.75)
    'blend(m|m#text-1|0.75)'
    """
    return f"blend({image_key}|{text_key}|{weight!r})"


def blend(image: np.ndarray, text: np.ndarray | None, weight: float) -> np.ndarray:
    """One item's blended vector (its image vector where it has no text vector)."""
    image = np.asarray(image, dtype=np.float32)
    if text is None:
        return image
    return ((1.0 - weight) * image + weight * np.asarray(text, dtype=np.float32)).astype(np.float32)


def stored_blended(catalog: Catalog, image_key: str, text_key: str, weight: float,
                   ids: Iterable[int]) -> dict[int, np.ndarray]:
    """The blended vectors of ``ids`` from the store (items without an image vector are left out)."""
    ids = [int(i) for i in ids]
    images = catalog.embeddings.get_many(ids, image_key)
    texts = catalog.embeddings.get_many(list(images), text_key)
    return {item: blend(vector, texts.get(item), weight) for item, vector in images.items()}


def _vector_source(catalog: Catalog, image_key: str, text_key: str, weight: float, dim: int):
    """Exact blended vectors by id for IVF-PQ re-ranking, computed from the store."""
    def source(ids: np.ndarray) -> np.ndarray:
        found = stored_blended(catalog, image_key, text_key, weight, ids.tolist())
        missing = np.zeros(dim, dtype=np.float32)
        rows = [found.get(int(i), missing) for i in ids]
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return source


def build_blended(catalog: Catalog, image_key: str, text_key: str, weight: float, dim: int,
                  settings: IndexSettings) -> VectorIndex:
    """The blended index over every item with an image vector, from the stored vectors."""
    ids, vectors = catalog.embeddings.all_for_model(image_key)
    text_ids, text_vectors = catalog.embeddings.all_for_model(text_key) if len(ids) else ([], None)
    if len(text_ids):
        rows = np.searchsorted(ids, text_ids)  # both ordered by id; every text item has a photo
        keep = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == text_ids)
        vectors[rows[keep]] = (1.0 - weight) * vectors[rows[keep]] + weight * text_vectors[keep]
    choice = choose_kind(len(ids), dim, settings.memory_budget_bytes, settings.kind)
    source = _vector_source(catalog, image_key, text_key, weight, dim)
    if len(ids) == 0:
        if choice.kind == "ivfpq":
            choice = IndexChoice("flat")
        return VectorIndex(dim, choice, vector_source=source)
    return VectorIndex.build(ids, vectors.astype(np.float32), choice, vector_source=source)


def open_blended_space(catalog: Catalog, index_dir: Path, image_key: str, text_key: str, dim: int,
                       weight: float, settings: IndexSettings) -> BlendedSpace:
    """The saved blended index where its manifest agrees with the store and the weight, else one
    built from the stored vectors (and saved)."""
    key = blended_key(image_key, text_key, weight)
    directory = blended_index_dir(index_dir)
    version = catalog.database.catalog_version()
    stored = catalog.embeddings.count(image_key)
    loaded = load_index(directory, _vector_source(catalog, image_key, text_key, weight, dim))
    if loaded is not None:
        index, manifest = loaded
        reasons = [reason for reason, wrong in (
            (f"made as {manifest.model_id}, not {key}", manifest.model_id != key),
            (f"dim {manifest.dim} != {dim}", manifest.dim != dim),
            (f"count {manifest.count} != {stored} stored", manifest.count != stored),
            (f"catalog version {manifest.catalog_version} != {version}", manifest.catalog_version != version),
            (f"kind {manifest.kind} != {settings.kind}", settings.kind != "auto" and manifest.kind != settings.kind),
        ) if wrong]
        if not reasons or (settings.accept_saved_behind_store and not settings.persist
                           and behind_only(manifest, key, dim, settings.kind, version)):
            return BlendedSpace(key, weight, image_key, text_key, index, manifest)
        log.log(logging.WARNING if settings.persist else logging.INFO,
                "blended index disagrees (%s); rebuilding from stored vectors", "; ".join(reasons))
    index = build_blended(catalog, image_key, text_key, weight, dim, settings)
    manifest = save_index(index, directory, model_id=key, catalog_version=version) if settings.persist \
        else describe_index(index, model_id=key, catalog_version=version)
    return BlendedSpace(key, weight, image_key, text_key, index, manifest)


def rebuilt_space(state: ServiceState) -> BlendedSpace | None:
    """A fresh blended index from the stored vectors (the caller swaps it in and saves)."""
    space = state.blended
    if space is None:
        return None
    index = build_blended(state.catalog, space.image_key, space.text_key, space.weight, state.encoder.dim,
                          state.index_settings)
    return dataclasses.replace(space, index=index)


def save_space(space: BlendedSpace, index_dir: Path, catalog_version: int) -> BlendedSpace:
    manifest = save_index(space.index, blended_index_dir(index_dir), model_id=space.key,
                          catalog_version=catalog_version)
    return dataclasses.replace(space, manifest=manifest)


def refresh(space: BlendedSpace, image_index: VectorIndex, text_index: VectorIndex | None,
            item_ids: Iterable[int]) -> None:
    """Bring the blended vectors of ``item_ids`` in step with the two indexes just written (one
    gone from the image index leaves; the others are re-blended from the indexes' vectors)."""
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        return
    present = [item for item in ids if item in image_index]
    gone = [item for item in ids if item not in image_index]
    if gone:
        space.index.remove(gone)
    if not present:
        return
    vectors = np.array(image_index.vectors_for(present), dtype=np.float32)
    if text_index is not None:
        worded = [row for row, item in enumerate(present) if item in text_index]
        if worded:
            text = text_index.vectors_for([present[row] for row in worded])
            vectors[worded] = (1.0 - space.weight) * vectors[worded] + space.weight * text
    space.index.add(present, vectors)


def semantic_scores(query: np.ndarray, space: BlendedSpace, pool: int, allowed_ids: Iterable[int] | None,
                    extra: Iterable[int] = (), extra_vectors: "ExtraVectors | None" = None) -> dict[int, float]:
    """Each candidate's semantic score from the one blended index: its top ``pool`` and ``extra``
    (the lexical list), scored against their blended vectors. ``extra_vectors``: those vectors
    read beforehand (``extra_vectors_of``, while the text tower ran), so only the product is left."""
    (ids, sims), = space.index.search(query, pool, allowed_ids=allowed_ids)
    scores = dict(zip(ids.tolist(), sims.tolist()))
    if extra_vectors is None:
        others = [item for item in extra if item not in scores and item in space.index]
        vectors = space.index.vectors_for(others) if others else None
    else:
        others = [item for item in extra_vectors.ids if item not in scores]
        # The same rows in the same order as a read after the search: the same product, bit for bit.
        vectors = extra_vectors.rows([extra_vectors.position[item] for item in others]) if others else None
    if others:
        sims = vectors @ np.asarray(query, dtype=np.float32).ravel()
        scores.update(zip(others, sims.tolist()))
    return scores


@dataclasses.dataclass(frozen=True)
class ExtraVectors:
    """The blended vectors of a text query's word matches, read before its text vector is known."""

    ids: list[int]  # the matches in the index, in the word list's order
    position: dict[int, int]
    matrix: np.ndarray

    def rows(self, positions: list[int]) -> np.ndarray:
        return self.matrix[np.asarray(positions, dtype=np.int64)]


def extra_vectors_of(space: BlendedSpace, extra: Iterable[int]) -> ExtraVectors:
    """``extra``'s blended vectors (those in the index), for ``semantic_scores``."""
    ids = [item for item in extra if item in space.index]
    matrix = space.index.vectors_for(ids) if ids else np.zeros((0, 0), dtype=np.float32)
    return ExtraVectors(ids, {item: row for row, item in enumerate(ids)}, matrix)


def stale_ids(catalog: Catalog, space: BlendedSpace) -> list[int]:
    """Indexed items whose blended vector differs from the one their stored vectors make."""
    ids = space.index.ids().tolist()
    out: list[int] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        expected = stored_blended(catalog, space.image_key, space.text_key, space.weight, chunk)
        chunk = [item for item in chunk if item in expected]
        if not chunk:
            continue
        got = space.index.vectors_for(chunk)
        want = np.stack([expected[item] for item in chunk])
        off = np.abs(got - want).max(axis=1) > STALE_TOLERANCE
        out.extend(item for item, bad in zip(chunk, off.tolist()) if bad)
    return out


def describe(state: ServiceState) -> dict | None:
    """What ``stats`` and ``index info`` say about the blended index (None without one)."""
    space = state.blended
    if space is None:
        return None
    return {"indexed": len(space.index), "index_kind": space.index.kind, "text_field_weight": space.weight,
            "text_queries_use_it": uses_blended(state)}


def uses_blended(state: ServiceState) -> bool:
    """Whether text queries take their semantic step from the blended index: there is one, made
    with the weight text search now uses."""
    space = state.blended
    return space is not None and space.weight == state.hybrid.text_field_weight
