"""Ranking image and item queries: in which vector space, re-ranked or not, several query parts
fused, and an image with words.

- The space: image and item queries rank by the instance vectors where the catalog has them
  all (``InstanceSpace.complete``), else by the text-aligned vectors as before. Text alone
  never comes here (``search/text_query.py``, on the text-aligned vectors).
- Re-ranking (``index/rerank.py``): the top ``RERANK_DEPTH`` candidates of each query vector
  are re-scored from their stored vectors (read from the index with the search itself, where
  the index keeps them exactly; else from the store).
- Several parts (``region="multi"``): each part's list, fused by the best score an item gets
  from any part; each hit says which part gave it.
- An image with words, in the instance space: the instance list and the text list (text vector
  against the text-aligned vectors) are pooled, and every candidate is scored in both spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

from jewelsearch.embed.instance import InstanceHead
from jewelsearch.index import VectorIndex
from jewelsearch.index.rerank import rerank as rerank_scores
from jewelsearch.search.fusion import fuse
from jewelsearch.search.state import ServiceState

RERANK_DEPTH = 100  # candidates a re-ranking re-scores
FUSION_POOL = 100  # candidates each space gives an image + text query

Hit = tuple[int, float, str]  # item id, score, the query part that gave it


@dataclass(frozen=True)
class Space:
    name: str  # "instance" or "aligned", as answers report it
    key: str  # storage key of its vectors
    index: VectorIndex
    head: InstanceHead | None = None  # what makes a photo's vector in it (None: the encoder's embedding)


def image_space(state: ServiceState) -> Space:
    """The space image and item queries rank in (one snapshot per request)."""
    space = state.instance
    if space is not None and space.complete:
        return Space("instance", space.key, space.index, space.head)
    return aligned_space(state)


def aligned_space(state: ServiceState) -> Space:
    return Space("aligned", state.encoder.model_id, state.index)


def ranked(state: ServiceState, space: Space, vector: np.ndarray, k: int, allowed: Collection[int] | None,
           exclude: Sequence[int], rerank: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (ids, scores) for one query vector, re-ranked over the top
    ``RERANK_DEPTH`` by ``rerank`` (scores are then the method's)."""
    if rerank == "none":
        (ids, scores), = space.index.search(vector, k, allowed_ids=allowed, exclude_ids=exclude)
        return ids, scores
    depth = max(k, RERANK_DEPTH)
    if space.index.holds_exact_vectors:
        # The candidates' vectors come with the search, from the index (the stored vectors, bit
        # for bit): no read of the store, and no item deleted between the two.
        ids, scores, vectors = space.index.search_with_vectors(vector, depth, allowed_ids=allowed,
                                                               exclude_ids=exclude)
    else:
        (ids, scores), = space.index.search(vector, depth, allowed_ids=allowed, exclude_ids=exclude)
        stored = state.catalog.embeddings.get_many(ids.tolist(), space.key)
        keep = np.array([int(i) in stored for i in ids], dtype=bool)  # an item deleted meanwhile drops out
        ids, scores = ids[keep], scores[keep]
        vectors = np.stack([stored[int(i)] for i in ids]) if len(ids) else None
    if len(ids) == 0:
        return ids, scores
    new = rerank_scores(rerank, vector, vectors, scores)
    order = np.argsort(-new, kind="stable")[:k]
    return ids[order], new[order]


def fuse_by_max(lists: Sequence[tuple[str, np.ndarray, np.ndarray]], k: int) -> list[Hit]:
    """The ``k`` best items over several parts' lists, each scored by its best part.

    Exact when each list is its part's top ``k``: an item of the true top k is in the list of
    the part that scores it best (else that part has k items above it, each of which would
    outrank it), so its best score is seen; an item whose best part left it out scores below
    k items and cannot enter the top k with a lower score.

    >>> fuse_by_max([("whole", np.array([1, 2]), np.array([0.9, 0.5])),
    ...              ("box 1", np.array([2, 3]), np.array([0.95, 0.4]))], 2)
    [(2, 0.95, 'box 1'), (1, 0.9, 'whole')]
    """
    best: dict[int, tuple[float, str]] = {}
    for label, ids, scores in lists:
        for item, score in zip(ids.tolist(), scores.tolist()):
            if item not in best or score > best[item][0]:
                best[item] = (float(score), label)
    ordered = sorted(best.items(), key=lambda pair: (-pair[1][0], pair[0]))[:k]
    return [(item, score, label) for item, (score, label) in ordered]


def image_and_text(state: ServiceState, space: Space, parts: Sequence[tuple[str, np.ndarray]],
                   text_vector: np.ndarray, text_weight: float, k: int, allowed: Collection[int] | None,
                   exclude: Sequence[int]) -> list[Hit]:
    """An image (one or several parts) with words, when images rank by instance vectors.

    The two vectors live in different spaces, so they cannot be summed into one query as the
    text-aligned image and text vectors are. Candidates come from both (each part's instance
    list and the text vector's list over the text-aligned vectors); each candidate's image
    similarity (its best part) and text similarity are computed exactly from the stored
    vectors, each rescaled 0-1 over the candidates (min-max, ``search/fusion.py``), and
    combined as ``(1 - w) * image + w * text``. The rescaling is what makes ``w`` mean what it
    says: a text's cosine with photos sits in a narrow, lower band (about 0.2-0.35) than one
    photo's with another (about 0.5-0.9), so raw similarities would let the image decide
    whatever ``w`` is.
    """
    pool = max(k, FUSION_POOL)
    aligned = aligned_space(state)
    candidates: set[int] = set()
    for _, vector in parts:
        ids, _ = ranked(state, space, vector, pool, allowed, exclude)
        candidates.update(ids.tolist())
    (text_ids, _), = aligned.index.search(text_vector, pool, allowed_ids=allowed, exclude_ids=exclude)
    candidates.update(text_ids.tolist())
    instance = state.catalog.embeddings.get_many(candidates, space.key)
    words = state.catalog.embeddings.get_many(candidates, aligned.key)
    items = sorted(i for i in candidates if i in instance and i in words)  # deleted meanwhile: dropped
    if not items:
        return []
    queries = np.stack([vector for _, vector in parts])
    image_scores = np.stack([instance[i] for i in items]) @ queries.T  # [items, parts]
    best_part = image_scores.argmax(axis=1)
    text_scores = np.stack([words[i] for i in items]) @ text_vector
    signals = {"image": dict(zip(items, image_scores.max(axis=1).tolist())),
               "text": dict(zip(items, text_scores.tolist()))}
    fused = fuse(signals, {"image": 1.0 - text_weight, "text": text_weight},
                 scales={"image": "min_max", "text": "min_max"})[:k]
    label = {item: parts[int(best_part[row])][0] for row, item in enumerate(items)}
    return [(item, score, label[item]) for item, score in fused]
