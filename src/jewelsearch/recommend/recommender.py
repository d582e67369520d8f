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

from jewelsearch.index import VectorIndex
from jewelsearch.recommend.attributes import AttributeTable
from jewelsearch.recommend.blend import BlendWeights, mmr, normalise
from jewelsearch.recommend.collaborative import CollaborativeSignals
from jewelsearch.recommend.factors import ItemFactors
from jewelsearch.recommend.history import UserHistory
from jewelsearch.recommend.interests import Interest, interests_of

VERB = {"view": "viewed", "click": "viewed", "like": "liked", "add_to_cart": "added to your cart",
        "purchase": "bought"}
# "you added to your cart this" reads wrong; the object goes before the cart.
ENGAGED = {"view": "you viewed this", "click": "you viewed this", "like": "you liked this",
           "add_to_cart": "you added this to your cart", "purchase": "you bought this"}
MAX_PROFILE_ITEMS = 64  # strongest engagements kept for clustering; bounds the cost of a heavy user
# A shopper with no history and no stated preference gets popular items spread over different
# looks: the tuned diversity (for shoppers with a history, where exploration slots bring variety)
# may be 0, and the best sellers alone can all be one kind of piece.
COLD_START_DIVERSITY = 0.5


@dataclass
class Recommendation:
    item_id: int
    score: float
    reasons: list[dict[str, Any]] = field(default_factory=list)


class Recommender:
    def __init__(self, index: VectorIndex, vectors_for: Callable[[Sequence[int]], Mapping[int, np.ndarray]],
                 signals: CollaborativeSignals, weights: BlendWeights | None = None,
                 category_of: Callable[[Sequence[int]], Mapping[int, str | None]] | None = None,
                 attributes: AttributeTable | None = None, factors: ItemFactors | None = None):
        self.index = index
        self.vectors_for = vectors_for
        self.signals = signals
        self.weights = weights or BlendWeights()
        self.category_of = category_of or (lambda ids: {})
        self.attributes = attributes
        self.factors = factors

    def interests(self, history: UserHistory, vectors_for=None, profile=None) -> list[Interest]:
        profile = profile if profile is not None else history.profile(self.weights.recency)
        strongest = sorted(profile, key=lambda i: -profile[i])[:MAX_PROFILE_ITEMS]
        vectors = (vectors_for or self.vectors_for)(strongest)
        ids = [i for i in strongest if i in vectors]
        if not ids:
            return []
        matrix = np.stack([vectors[i] for i in ids]).astype(np.float32)
        weights = np.array([profile[i] for i in ids])
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
        profile = history.profile(w.recency)  # item -> share of the shopper's engagement
        interests = self.interests(history, vectors_for, profile)
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
        co_raw = {i: v for i, v in self.signals.co_engaged(profile, pool * 2).items() if ok(i)}
        popular = {i: s for i, s in self.signals.most_popular(pool * 3) if ok(i)}
        factor_raw = {}
        if self.factors is not None and w.factors > 0 and history:
            # The fold-in reads engagement on the scale it was fitted on (summed event weights),
            # shared out as the profile shares it, so the current visit leads here too.
            total = sum(history.weights.values())
            factor_raw = {i: v for i, v in self.factors.scores({i: p * total for i, p in profile.items()},
                                                               pool * 2).items() if ok(i)}
        revisit = {}
        if w.history > 0:
            strongest = sorted((i for i in profile if ok(i)), key=lambda i: -profile[i])
            revisit = {i: profile[i] for i in strongest[:pool]}
        sim_n, co_n, pop_n = normalise(sim), normalise({i: v[0] for i, v in co_raw.items()}), normalise(popular)
        hist_n, factor_n = normalise(revisit), normalise(factor_raw)
        candidates = [c for c in set(sim_n) | set(co_n) | set(pop_n) | set(hist_n) | set(factor_n) if ok(c)]
        if not candidates:
            return self._fill(k, excluded, allowed)
        # Taste re-scores the candidates the other sources found rather than scanning the catalog.
        taste_raw = self.attributes.affinity(candidates, profile, w.taste_sharpness) \
            if self.attributes is not None and w.taste > 0 and history else {}
        top_taste = max((v[0] for v in taste_raw.values()), default=0.0)
        taste_n = {i: v[0] / top_taste for i, v in taste_raw.items()} if top_taste > 0 else {}
        # Taste scales the blend rather than adding to it: appeal is popularity *and* fit,
        # so an obscure item that fits is not lifted above a popular one that fits as well.
        fit = lambda c: 1.0 - w.taste + w.taste * taste_n.get(c, 0.0)  # noqa: E731
        score = {c: (w.similarity * sim_n.get(c, 0.0) + w.co_engagement * co_n.get(c, 0.0)
                     + w.popularity * pop_n.get(c, 0.0) + w.history * hist_n.get(c, 0.0)
                     + w.factors * factor_n.get(c, 0.0)) * fit(c)
                 for c in candidates}
        shortlist = sorted(candidates, key=lambda c: -score[c])[:pool]
        explore = min(k, int(round(w.explore * k))) if sim_n else 0
        cold = not history and text_vector is None and not seed_items
        trade_off = max(w.diversity, COLD_START_DIVERSITY) if cold else w.diversity
        order = mmr(shortlist, score, vectors_for(shortlist), k - explore, trade_off)
        if explore:
            # The closing slots go to look-alikes of what the shopper engaged with, ranked without
            # popularity or co-engagement: the catalog's long tail gets shown while the top of the
            # list stays the best guess.
            look_alike = {c: sim_n[c] * fit(c) for c in sim_n if c not in order and ok(c)}
            tail = sorted(look_alike, key=lambda c: -look_alike[c])[:pool]
            order = order + mmr(tail, look_alike, vectors_for(tail), explore, w.diversity)
        categories = self.category_of(order)
        out = []
        for item in order:
            reasons = []
            interest = sim_reason.get(item)
            if item in history.weights:  # an item the shopper already engaged with comes back
                kind = history.strongest_kind.get(item, "view")
                reasons.append({"type": "engaged", "item_id": item, "kind": kind,
                                "text": ENGAGED.get(kind, "you viewed this")})
            elif interest is not None and sim_n.get(item, 0) > 0:
                nearest = self._nearest_member(item, interest, vectors_for)
                kind = history.strongest_kind.get(nearest, "view")
                reasons.append({"type": "similar", "item_id": nearest, "kind": kind,
                                "text": f"similar to an item you {VERB.get(kind, 'viewed')}"})
            if item in co_raw:
                reasons.append({"type": "co_engaged", "item_id": co_raw[item][1],
                                "text": "often bought with an item you engaged with"})
            if not reasons and taste_n.get(item, 0) > 0.5:
                anchor = taste_raw[item][1]
                kind = history.strongest_kind.get(anchor, "view")
                shared = self.attributes.shared(item, anchor)
                words = " and ".join([", ".join(shared[:-1]), shared[-1]] if len(shared) > 1 else shared)
                reasons.append({"type": "taste", "item_id": anchor, "kind": kind, "shared": shared,
                                "text": f"same {words} as an item you {VERB.get(kind, 'viewed')}"})
            if not reasons and factor_n.get(item, 0) > 0.5:
                reasons.append({"type": "shoppers_like_you",
                                "text": "shoppers with your taste engaged with this"})
            if text_vector is not None and not reasons:
                reasons.append({"type": "preference", "text": "matches your stated preference"})
            if not reasons and item in popular:
                category = categories.get(item)
                reasons.append({"type": "popular", "category": category,
                                "text": f"popular in {category} this week" if category else "popular this week"})
            # Scores order the list: an exploration pick never shows a higher score than the
            # blended picks above it.
            shown = min(float(score[item]), out[-1].score) if out else float(score[item])
            out.append(Recommendation(item, shown, reasons))
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
