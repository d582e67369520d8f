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
    """Row-index clusters; merging stops when the Ward cost of the best merge (the growth in
    within-cluster squared distance) exceeds ``threshold`` and at most ``max_clusters`` remain.

    >>> a = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], dtype=np.float32)
    >>> sorted(sorted(c) for c in ward_clusters(a, threshold=0.1))
    [[0, 1], [2, 3]]
    """
    n = len(vectors)
    if n <= 1:
        return [list(range(n))]
    # SciPy's Ward heights are sqrt(2 x merge cost) and never decrease, so cutting the tree at
    # that height stops merging exactly where the cost first exceeds the threshold.
    from scipy.cluster.hierarchy import fcluster, linkage  # only recommendations cluster

    tree = linkage(np.asarray(vectors, dtype=np.float64), method="ward")
    labels = fcluster(tree, np.sqrt(2.0 * threshold), criterion="distance")
    if labels.max() > max_clusters:
        labels = fcluster(tree, max_clusters, criterion="maxclust")
    return [np.flatnonzero(labels == label).tolist() for label in np.unique(labels)]


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
