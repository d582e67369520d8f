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

from .history import decay

MAX_ITEMS_PER_USER = 50
NEIGHBOURS_PER_ITEM = 50


@dataclass
class CollaborativeSignals:
    # item -> [(other item, score)] strongest first
    neighbours: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    popularity: dict[int, float] = field(default_factory=dict)
    _ranked: list[tuple[int, float]] | None = field(default=None, repr=False, compare=False)

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
        scores: dict[int, float] = defaultdict(float)
        best: dict[int, tuple[float, int]] = {}
        # The strongest engagements carry the signal; a long tail of views adds cost, not taste.
        strongest = sorted(history_weights.items(), key=lambda kv: -kv[1])[:MAX_ITEMS_PER_USER * 2]
        for item, weight in strongest:
            for other, score in self.neighbours.get(item, ()):
                contribution = weight * score
                scores[other] += contribution
                if other not in best or contribution > best[other][0]:
                    best[other] = (contribution, item)
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:limit]
        return {item: (score, best[item][1]) for item, score in top}

    def most_popular(self, limit: int) -> list[tuple[int, float]]:
        if not self.popularity:
            return []
        if self._ranked is None:  # sorted once per build, then every request slices it
            items = np.fromiter(self.popularity.keys(), dtype=np.int64, count=len(self.popularity))
            scores = np.fromiter(self.popularity.values(), dtype=np.float64, count=len(self.popularity))
            order = np.argsort(-scores, kind="stable")
            self._ranked = [(int(items[i]), float(scores[i])) for i in order[:5000]]
        return self._ranked[:limit]
