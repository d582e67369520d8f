"""A check of local features over an image query's top candidates (pure numpy, no I/O).

Global vectors pool a photo into one point, so two pieces of one kind with the same overall
look can tie. Local features keep where each part is: one unit descriptor per position of the
image tower's last map. Two photos of the same piece should have many positions that pick
each other as best match (mutual nearest neighbours); two look-alikes fewer, and weaker.

``mutual_match_score``: the similarities of the mutual-nearest-neighbour pairs between the two
descriptor sets, summed and divided by the smaller set's size, so a score lies in [0, 1] for
non-negative descriptors (the last map comes after the tower's activation). ``local_rerank``
blends it into the candidates' global scores: ``global + weight * local``. Only the top
candidates are given to it; as the local score is never negative, a re-scored candidate never
falls below one that was not re-scored.

Off by default (``eval retrieval`` measures it; docs/experiments/2026-12-07-local-rerank.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LOCAL_CANDIDATES = 20       # candidates re-scored per searched view
LOCAL_WEIGHT = 0.5          # default blend weight of the local score


def mutual_match_score(query: np.ndarray, candidate: np.ndarray) -> float:
    """Sum of mutual-nearest-neighbour similarities between two sets of unit rows, over the
    smaller set's size (negative similarities count as 0)."""
    query = np.asarray(query, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32)
    if len(query) == 0 or len(candidate) == 0:
        return 0.0
    sims = query @ candidate.T
    forward = sims.argmax(axis=1)
    backward = sims.argmax(axis=0)
    mutual = backward[forward] == np.arange(len(query))
    matched = sims[np.arange(len(query)), forward][mutual]
    return float(np.clip(matched, 0.0, None).sum() / min(len(query), len(candidate)))


def local_rerank(query: np.ndarray, candidates: Sequence[np.ndarray], cand_scores: np.ndarray,
                 weight: float = LOCAL_WEIGHT) -> np.ndarray:
    """New scores for the candidates: ``cand_scores + weight * mutual_match_score``."""
    scores = np.asarray(cand_scores, dtype=np.float32)
    if len(candidates) != len(scores):
        raise ValueError("one local descriptor set per candidate score")
    local = np.asarray([mutual_match_score(query, c) for c in candidates], dtype=np.float32)
    return scores + np.float32(weight) * local
