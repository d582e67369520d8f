"""``VectorIndex``: a FAISS index keyed by item id, with filters and tombstones.

FAISS positions are internal; we keep our own position → item-id map so every
kind (Flat, HNSW, IVF-PQ) supports add/remove/update the same way.  Removal
marks a tombstone that searches exclude through an ``IDSelectorBitmap``;
``compacted()`` returns a fresh index without them, which the caller swaps in.
Search parameters (efSearch, nprobe) are passed per call in
``SearchParameters``, never set on the shared index, so concurrent searches
cannot change each other's accuracy.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Sequence

import faiss
import numpy as np

from jewelsearch.index.kinds import IndexChoice, default_params
from jewelsearch.index.rwlock import ReadWriteLock

log = logging.getLogger(__name__)

VectorSource = Callable[[np.ndarray], np.ndarray]  # item ids -> exact float32 vectors
EXACT_FILTER_MAX = 4096  # below this many allowed items, a scan beats a filtered graph walk
IVFPQ_MIN_TRAIN = 10_000


class VectorIndex:
    def __init__(self, dim: int, choice: IndexChoice, *, vector_source: VectorSource | None = None,
                 _faiss_index=None, _labels: np.ndarray | None = None,
                 _alive: np.ndarray | None = None):
        self.dim = int(dim)
        self.kind = choice.kind
        self.params = dict(default_params(choice.kind, 0, dim), **choice.params) \
            if choice.kind != "ivfpq" else dict(choice.params)
        self.vector_source = vector_source
        self._index = _faiss_index if _faiss_index is not None else self._new_faiss_index(0)
        self._labels = _labels if _labels is not None else np.zeros(0, dtype=np.int64)
        self._alive = _alive if _alive is not None else np.zeros(0, dtype=bool)
        self._pos = {int(label): i for i, label in enumerate(self._labels) if self._alive[i]}
        self._lock = ReadWriteLock()
        self._alive_bitmap: np.ndarray | None = None

    # ----- construction -------------------------------------------------
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, choice: IndexChoice,
              vector_source: VectorSource | None = None) -> "VectorIndex":
        ids = np.asarray(ids, dtype=np.int64)
        vectors = _as_matrix(vectors)
        dim = vectors.shape[1] if vectors.size else int(choice.params.get("dim", 0))
        if choice.kind == "ivfpq" and len(ids) < IVFPQ_MIN_TRAIN:
            log.info("only %d vectors: too few to train IVF-PQ, using flat", len(ids))
            choice = IndexChoice("flat")
        index = cls(dim, choice, vector_source=vector_source,
                    _faiss_index=_new_index(choice, dim, vectors))
        index.add(ids, vectors)
        return index

    def _new_faiss_index(self, n: int):
        if self.kind == "ivfpq":
            raise ValueError("an IVF-PQ index must be built from training vectors")
        return _new_index(IndexChoice(self.kind, self.params), self.dim, np.zeros((0, self.dim), np.float32))

    # ----- writes ---------------------------------------------------------
    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors for these item ids."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        vectors = _as_matrix(vectors)
        if len(ids) == 0:
            return
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected {len(ids)}x{self.dim} vectors, got {vectors.shape}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("duplicate ids in one add")
        with self._lock.write():
            start = self._index.ntotal
            self._index.add(vectors)
            for label in ids.tolist():
                old = self._pos.get(label)
                if old is not None:
                    self._alive[old] = False
            self._labels = np.concatenate([self._labels, ids])
            self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
            for offset, label in enumerate(ids.tolist()):
                self._pos[label] = start + offset
            self._alive_bitmap = None

    def remove(self, ids: Iterable[int]) -> int:
        removed = 0
        with self._lock.write():
            for label in ids:
                pos = self._pos.pop(int(label), None)
                if pos is not None:
                    self._alive[pos] = False
                    removed += 1
            if removed:
                self._alive_bitmap = None
        return removed

    # ----- reads ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._pos

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def tombstones(self) -> int:
        return self.ntotal - len(self._pos)

    @property
    def needs_compaction(self) -> bool:
        return self.tombstones > max(1000, 0.3 * self.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock.read():
            return np.sort(self._labels[self._alive])

    def vectors_for(self, item_ids: Sequence[int]) -> np.ndarray:
        """Stored vectors for live ids (exact for flat/HNSW, from the store for IVF-PQ)."""
        with self._lock.read():
            positions = np.array([self._pos[int(i)] for i in item_ids], dtype=np.int64)
            return self._vectors_at(positions)

    def search(self, queries: np.ndarray, k: int, *, allowed_ids: Iterable[int] | None = None,
               exclude_ids: Iterable[int] | None = None, ef_search: int | None = None,
               nprobe: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top-k (ids, scores) per query row, best first, inner product.

        ``allowed_ids`` restricts results to those items (a filter); results
        hold min(k, number of allowed live items) entries and never FAISS's -1.
        """
        queries = self._checked(queries)
        with self._lock.read():
            return self._search_locked(queries, int(k), allowed_ids, exclude_ids, ef_search, nprobe)

    @property
    def holds_exact_vectors(self) -> bool:
        """Whether ``vectors_for`` gives the vectors as they were added, bit for bit (flat and
        HNSW keep them; IVF-PQ reads them from its vector source, and without one gives only
        its codes' approximations)."""
        return self.kind != "ivfpq" or self.vector_source is not None

    def search_with_vectors(self, query: np.ndarray, k: int, *, allowed_ids: Iterable[int] | None = None,
                            exclude_ids: Iterable[int] | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``search`` for one query, plus the hits' vectors [len(ids), dim] read under the same
        lock: a re-ranking gets its candidates and their vectors from one snapshot of the index
        (an item removed meanwhile cannot be half there), without reading the store. The
        vectors are exact where ``holds_exact_vectors``."""
        queries = self._checked(query)
        if len(queries) != 1:
            raise ValueError("search_with_vectors takes one query")
        with self._lock.read():
            (ids, scores), = self._search_locked(queries, int(k), allowed_ids, exclude_ids, None, None)
            positions = np.fromiter((self._pos[int(i)] for i in ids.tolist()), dtype=np.int64, count=len(ids))
            return ids, scores, self._vectors_at(positions)

    def _checked(self, queries) -> np.ndarray:
        queries = _as_matrix(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query has dimension {queries.shape[1]}, index has {self.dim}")
        return queries

    def _search_locked(self, queries, k, allowed_ids, exclude_ids, ef_search, nprobe):
        """``search``'s body; the caller holds the read lock."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if k <= 0 or not self._pos:
            return [empty for _ in range(len(queries))]
        if allowed_ids is None and exclude_ids:
            # A few excluded items (e.g. purchases): over-fetch and drop them, far
            # cheaper than a bitmap over the whole catalog.
            excluded = {int(i) for i in exclude_ids}
            present = len(excluded & self._pos.keys())
            if present == 0:
                exclude_ids = None
            elif present <= 256:
                excluded_array = np.fromiter(excluded, dtype=np.int64, count=len(excluded))
                want = min(k, len(self._pos) - present)
                # Few excluded items sit among any one query's nearest, so a small margin
                # usually suffices; the full margin is the fallback, then the bitmap.
                for margin in sorted({min(present, 16), present}):
                    raw = self._search_unlocked(queries, k + margin, None, ef_search, nprobe)
                    trimmed = []
                    for ids, scores in raw:
                        keep = ~np.isin(ids, excluded_array)
                        trimmed.append((ids[keep][:k], scores[keep][:k]))
                    if all(len(ids) >= want for ids, _ in trimmed):
                        return trimmed
        return self._search_unlocked(queries, k, allowed_ids, ef_search, nprobe, exclude_ids)

    def _search_unlocked(self, queries, k, allowed_ids, ef_search, nprobe, exclude_ids=None):
        """The search itself; the caller holds the read lock."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        positions = self._candidate_positions(allowed_ids, exclude_ids)
        if positions is not None and len(positions) == 0:
            return [empty for _ in range(len(queries))]
        n_allowed = len(self._pos) if positions is None else len(positions)
        if positions is not None and len(positions) <= EXACT_FILTER_MAX:
            return [self._exact(q, positions, k) for q in queries]
        mask = self._mask(positions)
        want = min(k, n_allowed)
        results = []
        for q, (dist, pos) in zip(queries, self._faiss_search(queries, k, mask, ef_search, nprobe)):
            keep = pos >= 0
            pos, dist = pos[keep], dist[keep]
            if self.kind == "ivfpq":
                pos, dist = self._rerank(q, pos, dist)
            pos, dist = pos[:k], dist[:k]
            if len(pos) < want:
                # A filtered graph/IVF walk can dead-end; a scan is always complete.
                scan = positions if positions is not None else np.flatnonzero(self._alive)
                results.append(self._exact(q, scan, k))
            else:
                results.append((self._labels[pos], dist.astype(np.float32)))
        return results

    # ----- internals ------------------------------------------------------
    def _candidate_positions(self, allowed_ids, exclude_ids) -> np.ndarray | None:
        if allowed_ids is None and not exclude_ids:
            return None
        if allowed_ids is None:
            excluded = {int(i) for i in exclude_ids}
            if not excluded & self._pos.keys():
                return None
            return np.array([p for label, p in self._pos.items() if label not in excluded], dtype=np.int64)
        excluded = {int(i) for i in exclude_ids} if exclude_ids else set()
        pos = self._pos
        return np.fromiter((pos[i] for i in map(int, allowed_ids) if i in pos and i not in excluded),
                           dtype=np.int64)

    def _mask(self, positions: np.ndarray | None) -> np.ndarray | None:
        if positions is None:
            if self.tombstones == 0:
                return None
            if self._alive_bitmap is None:
                self._alive_bitmap = np.packbits(self._alive, bitorder="little")
            return self._alive_bitmap
        mask = np.zeros(self.ntotal, dtype=bool)
        mask[positions] = True
        return np.packbits(mask, bitorder="little")

    def _faiss_search(self, queries, k, bitmap, ef_search, nprobe):
        selector = None
        if bitmap is not None:
            selector = faiss.IDSelectorBitmap(self.ntotal, faiss.swig_ptr(bitmap))
        fetch = k
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(int(ef_search or self.params.get("ef_search", 96)), k)
        elif self.kind == "ivfpq":
            fetch = k * int(self.params.get("rerank", 10)) if self.vector_source else k
            params = faiss.SearchParametersIVF()
            params.nprobe = int(nprobe or self.params.get("nprobe", 32))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        fetch = min(fetch, self.ntotal)
        dist, pos = self._index.search(queries, fetch, params=params)
        return list(zip(dist, pos))

    def _rerank(self, query: np.ndarray, pos: np.ndarray, dist: np.ndarray):
        if self.vector_source is None or len(pos) == 0:
            return pos, dist
        exact = _as_matrix(self.vector_source(self._labels[pos]))
        scores = exact @ query
        order = np.argsort(-scores, kind="stable")
        return pos[order], scores[order]

    def _exact(self, query: np.ndarray, positions: np.ndarray, k: int):
        vectors = self._vectors_at(positions)
        scores = vectors @ query
        top = min(k, len(positions))
        best = np.argpartition(-scores, top - 1)[:top] if top < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return self._labels[positions[best]], scores[best].astype(np.float32)

    def _vectors_at(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.kind == "ivfpq" and self.vector_source is not None:
            return _as_matrix(self.vector_source(self._labels[positions]))
        return self._index.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))

    def compacted(self) -> "VectorIndex":
        """A new index holding only live vectors (for the caller to swap in)."""
        with self._lock.read():
            positions = np.flatnonzero(self._alive)
            ids = self._labels[positions]
            vectors = self._vectors_at(positions)
        return VectorIndex.build(ids, vectors, IndexChoice(self.kind, self.params), self.vector_source)

    # ----- persistence hooks (used by persist.py) --------------------------
    def state(self) -> dict:
        with self._lock.read():
            return {"faiss": faiss.serialize_index(self._index), "labels": self._labels.copy(),
                    "alive": self._alive.copy()}

    @classmethod
    def from_state(cls, dim: int, choice: IndexChoice, state: dict,
                   vector_source: VectorSource | None = None) -> "VectorIndex":
        index = faiss.deserialize_index(state["faiss"])
        if index.ntotal != len(state["labels"]) or len(state["labels"]) != len(state["alive"]):
            raise ValueError("index file and id map disagree")
        if choice.kind == "ivfpq":
            faiss.extract_index_ivf(index).make_direct_map()
        return cls(dim, choice, vector_source=vector_source, _faiss_index=index,
                   _labels=np.asarray(state["labels"], dtype=np.int64),
                   _alive=np.asarray(state["alive"], dtype=bool))


def _new_index(choice: IndexChoice, dim: int, training: np.ndarray):
    metric = faiss.METRIC_INNER_PRODUCT
    if choice.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if choice.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(choice.params.get("M", 32)), metric)
        index.hnsw.efConstruction = int(choice.params.get("ef_construction", 80))
        return index
    if choice.kind == "ivfpq":
        n = len(training)
        nlist = max(1, min(int(choice.params["nlist"]), n // 39))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, int(choice.params["pq_m"]), 8, metric)
        rng = np.random.default_rng(0)
        sample = training if n <= 200_000 else training[rng.choice(n, 200_000, replace=False)]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.make_direct_map()
        return index
    raise ValueError(f"unknown index kind {choice.kind!r}")


def _as_matrix(vectors) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    return np.ascontiguousarray(array)
