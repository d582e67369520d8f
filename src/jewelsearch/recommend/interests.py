"""A user's several interests, not one average (PinnerSage, Pal et al., KDD 2020).

Ward agglomerative clustering of the embeddings of the items a user engaged
with; each cluster is represented by its medoid (a real item, so the reason
"similar to <item> you liked" points at something the user saw) and weighted
by the decayed engagement of its members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Interest:
    medoid: int  # item id
    members: list[int]
    importance: float


def ward_clusters(vectors: np.ndarray, max_clusters: int = 5, threshold: float = 0.6) -> list[list[int]]:
    """Row-index clusters; merging stops when the Ward cost of the best merge exceeds
    ``threshold`` (in squared-distance units) and at most ``max_clusters`` remain.

    >>> a = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], dtype=np.float32)
    >>> sorted(sorted(c) for c in ward_clusters(a, threshold=0.1))
    [[0, 1], [2, 3]]
    """
    n = len(vectors)
    if n <= 1:
        return [list(range(n))]
    x = vectors.astype(np.float64)
    clusters: list[list[int]] = [[i] for i in range(n)]
    centroids = x.copy()
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    # Ward merge cost between singletons: half the squared distance.
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    cost = sq / 2.0
    np.fill_diagonal(cost, np.inf)
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], cost, np.inf)
        i, j = np.unravel_index(np.argmin(masked), masked.shape)
        best = masked[i, j]
        if best > threshold and alive.sum() <= max_clusters:
            break
        # Merge j into i and update Ward costs to every other live cluster.
        merged_size = sizes[i] + sizes[j]
        centroids[i] = (sizes[i] * centroids[i] + sizes[j] * centroids[j]) / merged_size
        sizes[i] = merged_size
        clusters[i] = clusters[i] + clusters[j]
        alive[j] = False
        others = np.flatnonzero(alive)
        d2 = ((centroids[others] - centroids[i]) ** 2).sum(-1)
        cost[i, others] = cost[others, i] = sizes[others] * merged_size / (sizes[others] + merged_size) * d2
        cost[i, i] = np.inf
        cost[j, :] = cost[:, j] = np.inf
    return [clusters[i] for i in np.flatnonzero(alive)]


def interests_of(item_ids: list[int], vectors: np.ndarray, weights: np.ndarray, *, max_clusters: int = 5,
                 threshold: float = 0.6) -> list[Interest]:
    """Interests sorted by importance (sum of member weights), strongest first."""
    out = []
    for rows in ward_clusters(vectors, max_clusters, threshold):
        member_vectors = vectors[rows]
        # Medoid under cosine distance: the member closest to all the others.
        sims = member_vectors @ member_vectors.T
        medoid_row = rows[int(np.argmax((sims * weights[rows][None, :]).sum(1)))]
        out.append(Interest(medoid=item_ids[medoid_row], members=[item_ids[r] for r in rows],
                            importance=float(weights[rows].sum())))
    out.sort(key=lambda i: -i.importance)
    return out
