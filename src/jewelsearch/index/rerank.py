"""Re-ranking an image query's top candidates from their vectors alone (pure numpy, no I/O).

Two methods from the instance-retrieval literature, each returning new scores for the
candidates (higher is better; sort by them):

- ``alpha_query_expansion`` (αQE; Radenović, Tolias and Chum, "Fine-tuning CNN image retrieval
  with no human annotation", TPAMI 2018): the query is replaced by the normalised sum of itself
  and its ``top_n`` best candidates, each weighted by its similarity to the query raised to
  ``alpha``, and every candidate is scored against that expanded query. Neighbours that agree
  with the query pull it towards their shared views of the piece.
- ``k_reciprocal`` (Zhong, Zheng, Cao and Li, "Re-ranking person re-identification with
  k-reciprocal encoding", CVPR 2017), on the candidate set: two photos are k-reciprocal
  neighbours when each is among the other's k nearest; each photo is encoded as a vector over
  the set (a Gaussian of its distance to each of its expanded k-reciprocal neighbours), averaged
  over its ``k2`` nearest (local query expansion), and the query's distance to a candidate is
  the Jaccard distance of their encodings mixed with the original distance (``lambda_``).
  A candidate close to the query but whose own neighbours are elsewhere (a hub) drops.

Vectors are unit rows; the original distance is the squared Euclidean distance, 2 - 2·cos.
"""

from __future__ import annotations

import numpy as np

METHODS = ("none", "aqe", "kreciprocal")


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def alpha_query_expansion(query: np.ndarray, cand_vectors: np.ndarray, cand_scores: np.ndarray,
                          top_n: int = 3, alpha: float = 3.0) -> np.ndarray:
    """New scores: each candidate's cosine with the expanded query
    ``q' = unit(q + sum over the top_n candidates of max(s_i, 0)^alpha * x_i)``, where ``s_i`` are
    ``cand_scores`` (the query's similarities). ``top_n=0`` gives the plain cosines.

    >>> q = np.array([1.0, 0.0])
    >>> x = np.array([[np.cos(a), np.sin(a)] for a in np.radians([20, -24, 25])])
    >>> np.argsort(-(x @ q)).tolist(), np.argsort(-alpha_query_expansion(q, x, x @ q, top_n=1)).tolist()
    ([0, 1, 2], [0, 2, 1])
    """
    vectors = _unit(np.atleast_2d(cand_vectors)) if len(cand_vectors) else np.zeros((0, len(query)))
    scores = np.asarray(cand_scores, dtype=np.float64)
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    top = np.argsort(-scores, kind="stable")[:max(0, int(top_n))]
    weights = np.clip(scores[top], 0.0, None) ** float(alpha)
    expanded = _unit(_unit(query) + weights @ vectors[top])
    return (vectors @ expanded).astype(np.float32)


def _reciprocal(order: np.ndarray, i: int, k: int) -> np.ndarray:
    """R(i, k): those of i's k nearest (i itself included, as row ``order[i]`` starts with it)
    that have i among their own k nearest."""
    forward = order[i, :k + 1]
    backward = order[forward, :k + 1]
    return forward[(backward == i).any(axis=1)]


def k_reciprocal(query: np.ndarray, cand_vectors: np.ndarray, k1: int = 20, k2: int = 6,
                 lambda_: float = 0.3) -> np.ndarray:
    """New scores for the candidates: minus the final distance
    ``(1 - lambda_) * Jaccard + lambda_ * squared Euclidean`` to the query, computed on the set
    {query} ∪ candidates. ``k1`` and ``k2`` are cut to what the set holds; ``lambda_=1`` keeps
    the original order."""
    candidates = np.atleast_2d(np.asarray(cand_vectors, dtype=np.float64))
    if len(cand_vectors) == 0:
        return np.zeros(0, dtype=np.float32)
    points = _unit(np.vstack([np.asarray(query, dtype=np.float64)[None, :], candidates]))
    n = len(points)
    dist = np.clip(2.0 - 2.0 * points @ points.T, 0.0, None)
    ranking = dist.copy()
    np.fill_diagonal(ranking, -1.0)  # each point is its own first neighbour, even beside a duplicate
    order = np.argsort(ranking, axis=1, kind="stable")
    k1 = max(1, min(int(k1), n - 1))
    half = max(1, int(round(k1 / 2)))
    reciprocal = [_reciprocal(order, i, k1) for i in range(n)]
    reciprocal_half = [_reciprocal(order, i, half) for i in range(n)]
    encoding = np.zeros((n, n))
    for i in range(n):
        expanded = set(reciprocal[i].tolist())
        own = expanded.copy()
        for c in reciprocal[i].tolist():
            theirs = set(reciprocal_half[c].tolist())
            # Add a neighbour's own reciprocal set where it mostly agrees with i's (the paper's 2/3).
            if len(theirs & own) >= 2.0 / 3.0 * len(theirs):
                expanded |= theirs
        members = np.fromiter(expanded, dtype=np.int64)
        encoding[i, members] = np.exp(-dist[i, members])
    k2 = max(1, min(int(k2), n))
    if k2 > 1:  # local query expansion: the mean encoding of each point's k2 nearest, itself included
        encoding = encoding[order[:, :k2]].mean(axis=1)
    probe = encoding[0]
    overlap = np.minimum(probe[None, :], encoding[1:]).sum(axis=1)
    union = np.maximum(probe[None, :], encoding[1:]).sum(axis=1)
    jaccard = 1.0 - np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    final = (1.0 - lambda_) * jaccard + lambda_ * dist[0, 1:]
    return (-final).astype(np.float32)


def rerank(method: str, query: np.ndarray, cand_vectors: np.ndarray, cand_scores: np.ndarray) -> np.ndarray:
    """New scores by ``method`` (one of ``METHODS``) with each method's default parameters."""
    if method == "aqe":
        return alpha_query_expansion(query, cand_vectors, cand_scores)
    if method == "kreciprocal":
        return k_reciprocal(query, cand_vectors)
    if method == "none":
        return np.asarray(cand_scores, dtype=np.float32)
    raise ValueError(f"rerank must be one of {', '.join(METHODS)}")
