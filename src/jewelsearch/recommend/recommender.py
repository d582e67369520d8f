"""The recommender: a user's history → ranked items with reasons.

Candidates come from three sources: per-interest nearest neighbours in the
index (quota by interest importance), co-engagement with the user's items,
and recency-weighted popularity.  Scores are normalised per source, blended
with configurable weights, diversified with MMR, then business rules apply
(purchased items, filters, deleted items).  Users without history get
popular items, diversified; a text preference or seed items steer the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..index import VectorIndex
from .blend import BlendWeights, mmr, normalise
from .collaborative import CollaborativeSignals
from .history import UserHistory
from .interests import Interest, interests_of

VERB = {"view": "viewed", "click": "viewed", "like": "liked", "add_to_cart": "added to your cart",
        "purchase": "bought"}
MAX_PROFILE_ITEMS = 64  # strongest engagements kept for clustering; bounds the cost of a heavy user


@dataclass
class Recommendation:
    item_id: int
    score: float
    reasons: list[dict[str, Any]] = field(default_factory=list)


class Recommender:
    def __init__(self, index: VectorIndex, vectors_for: Callable[[Sequence[int]], Mapping[int, np.ndarray]],
                 signals: CollaborativeSignals, weights: BlendWeights | None = None,
                 category_of: Callable[[Sequence[int]], Mapping[int, str | None]] | None = None):
        self.index = index
        self.vectors_for = vectors_for
        self.signals = signals
        self.weights = weights or BlendWeights()
        self.category_of = category_of or (lambda ids: {})

    def interests(self, history: UserHistory, vectors_for=None) -> list[Interest]:
        strongest = sorted(history.weights, key=lambda i: -history.weights[i])[:MAX_PROFILE_ITEMS]
        vectors = (vectors_for or self.vectors_for)(strongest)
        ids = [i for i in strongest if i in vectors]
        if not ids:
            return []
        matrix = np.stack([vectors[i] for i in ids]).astype(np.float32)
        weights = np.array([history.weights[i] for i in ids])
        return interests_of(ids, matrix, weights, max_clusters=self.weights.max_interests,
                            threshold=self.weights.ward_threshold)

    def recommend(self, history: UserHistory, k: int, *, allowed_ids: Sequence[int] | None = None,
                  text_vector: np.ndarray | None = None, seed_items: Sequence[int] = (),
                  exclude: Sequence[int] = ()) -> list[Recommendation]:
        w = self.weights
        vectors_for = _Memo(self.vectors_for)  # one store round trip per new id, per request
        allowed = None if allowed_ids is None else set(allowed_ids)
        excluded = set(history.purchased) | set(exclude)
        ok = lambda i: i not in excluded and i in self.index and (allowed is None or i in allowed)  # noqa: E731
        pool = max(4 * k, 40)
        sim: dict[int, float] = {}
        sim_reason: dict[int, Interest] = {}
        interests = self.interests(history, vectors_for)
        for seed in seed_items:  # explicit seeds act as an extra, strong interest
            if seed in self.index:
                interests.insert(0, Interest(seed, [seed], max([i.importance for i in interests] + [1.0])))
        queries, quotas, owners = [], [], []
        total = sum(i.importance for i in interests) or 1.0
        for interest in interests:
            vector = vectors_for([interest.medoid]).get(interest.medoid)
            if vector is None:
                continue
            if text_vector is not None:
                vector = _unit(_unit(vector) + 0.7 * text_vector)
            queries.append(vector)
            quotas.append(max(3, int(round(pool * interest.importance / total))))
            owners.append(interest)
        if text_vector is not None and not queries:
            queries, quotas, owners = [np.asarray(text_vector, np.float32)], [pool], [None]
        if queries:
            results = self.index.search(np.stack(queries), max(quotas), allowed_ids=allowed_ids,
                                        exclude_ids=excluded)
            for (ids, scores), quota, owner in zip(results, quotas, owners):
                weight = 1.0 if owner is None else 0.5 + 0.5 * owner.importance / total
                for item, score in zip(ids[:quota].tolist(), scores[:quota].tolist()):
                    value = weight * score
                    if value > sim.get(item, -np.inf):
                        sim[item] = value
                        if owner is not None:
                            sim_reason[item] = owner
        co_raw = {i: v for i, v in self.signals.co_engaged(history.weights, pool * 2).items() if ok(i)}
        popular = {i: s for i, s in self.signals.most_popular(pool * 3) if ok(i)}
        sim_n, co_n, pop_n = normalise(sim), normalise({i: v[0] for i, v in co_raw.items()}), normalise(popular)
        candidates = [c for c in set(sim_n) | set(co_n) | set(pop_n) if ok(c)]
        if not candidates:
            return self._fill(k, excluded, allowed)
        score = {c: w.similarity * sim_n.get(c, 0.0) + w.co_engagement * co_n.get(c, 0.0)
                 + w.popularity * pop_n.get(c, 0.0) for c in candidates}
        shortlist = sorted(candidates, key=lambda c: -score[c])[:pool]
        shortlist_vectors = vectors_for(shortlist)
        order = mmr(shortlist, score, shortlist_vectors, k, w.diversity)
        categories = self.category_of(order)
        out = []
        for item in order:
            reasons = []
            interest = sim_reason.get(item)
            if interest is not None and sim_n.get(item, 0) > 0:
                nearest = self._nearest_member(item, interest, vectors_for)
                kind = history.strongest_kind.get(nearest, "view")
                if nearest == item:  # an item the shopper already engaged with comes back
                    reasons.append({"type": "engaged", "item_id": item, "kind": kind,
                                    "text": f"you {VERB.get(kind, 'viewed')} this"})
                else:
                    reasons.append({"type": "similar", "item_id": nearest, "kind": kind,
                                    "text": f"similar to an item you {VERB.get(kind, 'viewed')}"})
            if item in co_raw:
                reasons.append({"type": "co_engaged", "item_id": co_raw[item][1],
                                "text": "often bought with an item you engaged with"})
            if text_vector is not None and not reasons:
                reasons.append({"type": "preference", "text": "matches your stated preference"})
            if not reasons and item in popular:
                category = categories.get(item)
                reasons.append({"type": "popular", "category": category,
                                "text": f"popular in {category} this week" if category else "popular this week"})
            out.append(Recommendation(item, float(score[item]), reasons))
        if len(out) < k:
            out.extend(self._fill(k - len(out), excluded | set(order), allowed))
        return out

    def _nearest_member(self, item: int, interest: Interest, vectors_for) -> int:
        if len(interest.members) == 1:
            return interest.members[0]
        vectors = vectors_for(interest.members + [item])
        target = vectors.get(item)
        if target is None:
            return interest.medoid
        return max((m for m in interest.members if m in vectors), key=lambda m: float(vectors[m] @ target))

    def _fill(self, k: int, excluded: set[int], allowed: set[int] | None) -> list[Recommendation]:
        """Top up from the catalog so a thin event log still yields k items."""
        out = []
        source = sorted(allowed) if allowed is not None else self.index.ids().tolist()
        for item in source:
            if item not in excluded and item in self.index:
                out.append(Recommendation(item, 0.0, [{"type": "catalog", "text": "from the catalog"}]))
                if len(out) == k:
                    break
        return out


class _Memo:
    """Vectors by id, fetched from the store once per request however often asked for."""

    def __init__(self, fetch: Callable[[Sequence[int]], Mapping[int, np.ndarray]]):
        self.fetch = fetch
        self.known: dict[int, np.ndarray | None] = {}

    def __call__(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        missing = [i for i in dict.fromkeys(ids) if i not in self.known]
        if missing:
            found = self.fetch(missing)
            for i in missing:
                self.known[i] = found.get(i)
        return {i: self.known[i] for i in ids if self.known.get(i) is not None}


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)
