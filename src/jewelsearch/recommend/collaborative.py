"""Signals from everyone's events: co-engagement ("often bought together") and popularity.

Built once from the event log and reused across requests; the service rebuilds
it when events have changed.  Per user only the most recent engagements count
towards co-engagement, which bounds the quadratic pair count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from jewelsearch.recommend.history import decay

MAX_ITEMS_PER_USER = 50
NEIGHBOURS_PER_ITEM = 50


@dataclass
class CollaborativeSignals:
    # item -> [(other item, score)] strongest first
    neighbours: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    popularity: dict[int, float] = field(default_factory=dict)
    _ranked: list[tuple[int, float]] | None = field(default=None, repr=False, compare=False)
    _table: "_NeighbourTable | None" = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, events: Iterable[Mapping[str, Any]], *, now: float,
              popularity_half_life_days: float = 7.0) -> "CollaborativeSignals":
        per_user: dict[str, dict[int, float]] = defaultdict(dict)
        popularity: dict[int, float] = defaultdict(float)
        latest: dict[str, dict[int, float]] = defaultdict(dict)
        for event in events:
            item, weight, ts = int(event["item_id"]), float(event["weight"]), float(event["ts"])
            popularity[item] += weight * decay(now - ts, popularity_half_life_days)
            user = per_user[event["user_id"]]
            user[item] = user.get(item, 0.0) + weight
            seen = latest[event["user_id"]]
            seen[item] = max(seen.get(item, 0.0), ts)
        pairs: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for user_id, items in per_user.items():
            recent = sorted(items, key=lambda i: -latest[user_id][i])[:MAX_ITEMS_PER_USER]
            if len(recent) < 2:
                continue
            # Dampen heavy users so one enthusiast does not define "bought together".
            norm = 1.0 / math.log2(2 + len(recent))
            for a in recent:
                wa = math.log1p(items[a])
                for b in recent:
                    if a != b:
                        pairs[a][b] += norm * wa * math.log1p(items[b])
        neighbours = {}
        for item, others in pairs.items():
            top = sorted(others.items(), key=lambda kv: -kv[1])[:NEIGHBOURS_PER_ITEM]
            neighbours[item] = top
        return cls(neighbours, dict(popularity))

    def co_engaged(self, history_weights: Mapping[int, float], limit: int = 200
                   ) -> dict[int, tuple[float, int]]:
        """Candidate -> (score, the history item that contributes most)."""
        if self._table is None:  # flattened once per build; each request then works on arrays
            self._table = _NeighbourTable.of(self.neighbours)
        table = self._table
        # The strongest engagements carry the signal; a long tail of views adds cost, not taste.
        strongest = sorted(((i, w) for i, w in history_weights.items() if i in table.row_of),
                           key=lambda kv: -kv[1])[:MAX_ITEMS_PER_USER * 2]
        if not strongest:
            return {}
        rows = np.fromiter((table.row_of[i] for i, _ in strongest), dtype=np.int64, count=len(strongest))
        weights = np.fromiter((w for _, w in strongest), dtype=np.float64, count=len(strongest))
        starts, lengths = table.start[rows], table.start[rows + 1] - table.start[rows]
        if lengths.sum() == 0:
            return {}
        source = np.repeat(np.arange(len(rows)), lengths)
        # Positions of every neighbour of every history item, without a Python loop.
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = np.repeat(starts, lengths) + offsets
        contribution = weights[source] * table.score[positions]
        others, group = np.unique(table.other[positions], return_inverse=True)
        totals = np.bincount(group, weights=contribution)
        # For each candidate, the history item with the largest single contribution.
        order = np.lexsort((contribution, group))
        last = np.r_[group[order][1:] != group[order][:-1], True]
        best_source = np.empty(len(others), dtype=np.int64)
        best_source[group[order][last]] = source[order][last]
        top = np.argsort(-totals, kind="stable")[:limit]
        return {int(others[t]): (float(totals[t]), int(strongest[best_source[t]][0])) for t in top}

    def most_popular(self, limit: int) -> list[tuple[int, float]]:
        if not self.popularity:
            return []
        if self._ranked is None:  # sorted once per build, then every request slices it
            items = np.fromiter(self.popularity.keys(), dtype=np.int64, count=len(self.popularity))
            scores = np.fromiter(self.popularity.values(), dtype=np.float64, count=len(self.popularity))
            order = np.argsort(-scores, kind="stable")
            self._ranked = [(int(items[i]), float(scores[i])) for i in order[:5000]]
        return self._ranked[:limit]


@dataclass
class _NeighbourTable:
    """``neighbours`` flattened: the neighbours of the item in row r sit at start[r]:start[r+1]."""

    row_of: dict[int, int]
    start: np.ndarray
    other: np.ndarray
    score: np.ndarray

    @classmethod
    def of(cls, neighbours: Mapping[int, list[tuple[int, float]]]) -> "_NeighbourTable":
        items = list(neighbours)
        lengths = np.array([len(neighbours[i]) for i in items], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        other = np.fromiter((o for i in items for o, _ in neighbours[i]), dtype=np.int64, count=int(start[-1]))
        score = np.fromiter((v for i in items for _, v in neighbours[i]), dtype=np.float64, count=int(start[-1]))
        return cls({item: r for r, item in enumerate(items)}, start, other, score)
