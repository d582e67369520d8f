"""Blending candidate sources and diversifying the list (MMR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass
class BlendWeights:
    """How much each source counts; tuned by ``jewelsearch eval recommend``."""

    # Defaults from `jewelsearch eval recommend --shoppers-from given` on the 600-item demo
    # catalog with the shipped model (random search on two 400-shopper tuning populations,
    # seeds 1001 and 1002, tastes drawn from the fields the catalog was given: best mean NDCG@10
    # among settings whose coverage beats content-only's by the tuning margin on both). They
    # became the defaults on 2026-11-28 because they clear the +20 % target with shoppers drawn
    # either way (the decision record in docs/experiments/; reports/recommend/).
    similarity: float = 0.3
    co_engagement: float = 2.5
    popularity: float = 0.8
    # Items the shopper already engaged with and did not buy: people come back to what they
    # looked at ("recently viewed"); 0 turns the source off.
    history: float = 2.0
    # ALS taste (``recommend/factors.py``): the items a shopper's folded-in vector scores highest,
    # a candidate source and a score; used once `jewelsearch recommender fit` has fitted factors
    # (without them the source is simply absent). 1.0 since 2026-12-07: chosen with
    # co_engagement 2.5 on the given-field tuning populations, and above the weights without it on
    # populations 1-5 under both shopper definitions (docs/experiments/, the decision check).
    factors: float = 1.0
    # Shared catalog attributes (category, metal, gemstone, cut, price range) with the
    # shopper's strongest items; scales the blend (0 = off, 1 = fully proportional to it).
    taste: float = 0.8
    taste_sharpness: float = 2.0
    # Share of the profile given to the current visit (engagement decayed over hours from the
    # shopper's latest event) against the long-term history: 0 = long-term only.
    recency: float = 0.7
    # Share of the k slots, at the end of the list, filled by visual look-alikes of the shopper's
    # items regardless of popularity (catalog coverage); 0 = every slot from the blend.
    explore: float = 0.5
    diversity: float = 0.4  # MMR trade-off: 0 = pure relevance
    ward_threshold: float = 0.3
    max_interests: int = 5


def normalise(scores: Mapping[int, float]) -> dict[int, float]:
    """Min-max scale a source's scores to [0, 1] so sources with different units can be summed.

    Cosine scores of a shortlist all sit near the top (0.8-0.95); dividing by the maximum
    would leave them nearly equal, so the spread is stretched to the full range.

    >>> normalise({1: 2.0, 2: 4.0, 3: 3.0})
    {1: 0.0, 2: 1.0, 3: 0.5}
    """
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low <= 1e-12:
        return {k: 1.0 for k in scores}
    return {k: (v - low) / (high - low) for k, v in scores.items()}


def mmr(candidates: list[int], relevance: Mapping[int, float], vectors: Mapping[int, np.ndarray],
        k: int, trade_off: float) -> list[int]:
    """Maximal marginal relevance: each pick balances relevance against similarity to picks so far."""
    if trade_off <= 0 or len(candidates) <= 1:
        return sorted(candidates, key=lambda c: -relevance[c])[:k]
    pool = [c for c in candidates if c in vectors]
    missing = [c for c in candidates if c not in vectors]
    chosen: list[int] = []
    if pool:
        matrix = np.stack([vectors[c] for c in pool])
        rel = np.array([relevance[c] for c in pool])
        max_sim = np.full(len(pool), -1.0)
        taken = np.zeros(len(pool), dtype=bool)
        for _ in range(min(k, len(pool))):
            score = (1 - trade_off) * rel - trade_off * np.where(max_sim < -0.5, 0.0, max_sim)
            score[taken] = -np.inf
            best = int(np.argmax(score))
            taken[best] = True
            chosen.append(pool[best])
            max_sim = np.maximum(max_sim, matrix @ matrix[best])
    for c in sorted(missing, key=lambda c: -relevance[c]):
        if len(chosen) >= k:
            break
        chosen.append(c)
    return chosen
