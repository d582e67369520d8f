"""The recommender: a user's history → ranked items with reasons.

Foundation version: one taste vector, the engagement-weighted mean of the
embeddings of the items a user engaged with, searched in the index; purchased
items (and liked / carted ones, which the shopper already keeps) are excluded;
users without history get the most engaged-with items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..index import VectorIndex
from .history import UserHistory

VerbForKind = {"view": "viewed", "click": "viewed", "like": "liked",
               "add_to_cart": "added to your cart", "purchase": "bought"}


@dataclass
class Recommendation:
    item_id: int
    score: float
    reasons: list[dict[str, Any]] = field(default_factory=list)


class Recommender:
    def __init__(self, index: VectorIndex, vectors_for: Callable[[Sequence[int]], Mapping[int, np.ndarray]],
                 popular: Callable[[int], list[tuple[int, float]]]):
        self.index = index
        self.vectors_for = vectors_for
        self.popular = popular

    def recommend(self, history: UserHistory, k: int, *, allowed_ids: list[int] | None = None,
                  text_vector: np.ndarray | None = None) -> list[Recommendation]:
        # Bought, wishlisted or carted items are already known to the shopper.
        exclude = {i for i, kind in history.strongest_kind.items()
                   if kind in ("purchase", "like", "add_to_cart")} | history.purchased
        vectors = self.vectors_for(list(history.weights)) if history else {}
        engaged = [i for i in history.weights if i in vectors]
        if not engaged and text_vector is None:
            return self._popular(k, exclude, allowed_ids)
        query = np.zeros(self.index.dim, dtype=np.float32)
        if engaged:
            weights = np.array([history.weights[i] for i in engaged], dtype=np.float32)
            matrix = np.stack([vectors[i] for i in engaged])
            query += (weights[:, None] * matrix).sum(0) / max(weights.sum(), 1e-9)
        if text_vector is not None:
            norm = float(np.linalg.norm(query))
            query = query / norm if norm > 0 else query
            query = query + np.asarray(text_vector, dtype=np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-9)
        (ids, scores), = self.index.search(query, k, allowed_ids=allowed_ids, exclude_ids=exclude)
        out = []
        for item_id, score in zip(ids.tolist(), scores.tolist()):
            reasons = []
            if engaged:
                nearest = max(engaged, key=lambda i: float(vectors[i] @ self.index_vector(item_id)))
                reasons.append({"type": "similar", "item_id": nearest,
                                "kind": history.strongest_kind.get(nearest, "view"),
                                "text": f"similar to an item you {VerbForKind.get(history.strongest_kind.get(nearest, 'view'), 'viewed')}"})
            if text_vector is not None:
                reasons.append({"type": "preference", "text": "matches your stated preference"})
            out.append(Recommendation(item_id, float(score), reasons))
        return out

    def index_vector(self, item_id: int) -> np.ndarray:
        return self.index.vectors_for([item_id])[0]

    def _popular(self, k: int, exclude: set[int], allowed_ids: list[int] | None) -> list[Recommendation]:
        allowed = None if allowed_ids is None else set(allowed_ids)
        out = []
        for item_id, score in self.popular(k * 3 + len(exclude)):
            if item_id in exclude or (allowed is not None and item_id not in allowed) \
                    or item_id not in self.index:
                continue
            out.append(Recommendation(item_id, float(score),
                                      [{"type": "popular", "text": "popular with other shoppers"}]))
            if len(out) == k:
                break
        if len(out) < k:
            # Thin event data: fill with other catalog items so a new shop still sees k.
            seen = {r.item_id for r in out} | exclude
            for item_id in (allowed_ids if allowed_ids is not None else self.index.ids().tolist()):
                if item_id not in seen and item_id in self.index:
                    out.append(Recommendation(item_id, 0.0, [{"type": "catalog", "text": "from the catalog"}]))
                    if len(out) == k:
                        break
        return out
