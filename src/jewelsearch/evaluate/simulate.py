"""A shopper simulator for offline evaluation of recommendations.

Each simulated shopper has 1–3 latent tastes, each a few attribute values
(always a category, plus some of metal, gemstone, cut and price band).  They
browse in sessions; a session follows one taste.  An item's appeal is how
many of the taste's attributes it matches, sharpened, times a Zipf popularity
bias; some views are pure noise.  Views can lead to likes, cart adds and
purchases, more often for items that match better.  Deterministic by seed.

Attribute tastes are made of the same fields the blend's taste source compares, which flatters
it; ``EmbeddingTastes`` draws shoppers whose tastes are looks in the image-embedding space
instead, which no catalog field names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

TASTE_ATTRIBUTES = ("metal", "gemstone", "stone_shape", "price_band")


@dataclass
class SimulatedUser:
    user_id: str
    tastes: list[dict[str, str]]
    taste_weights: list[float]
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimulationConfig:
    users: int = 400
    sessions: tuple[int, int] = (3, 7)
    views_per_session: tuple[int, int] = (3, 7)
    noise: float = 0.1  # share of views that ignore taste
    sharpness: float = 3.0
    popularity_skew: float = 0.8  # Zipf exponent of item popularity
    p_like: float = 0.3
    p_cart: float = 0.12
    p_purchase: float = 0.08
    start_ts: float = 1_780_000_000.0


def price_bands(prices: Sequence[float | None]) -> list[str]:
    known = np.array([p for p in prices if p is not None], dtype=float)
    if len(known) == 0:
        return ["any"] * len(prices)
    low, high = np.quantile(known, [1 / 3, 2 / 3])
    return ["any" if p is None else "budget" if p <= low else "mid" if p <= high else "luxury" for p in prices]


def item_table(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Catalog rows reduced to the attributes tastes are made of."""
    bands = price_bands([i.get("price") for i in items])
    return [{"id": i["id"], "category": i.get("category") or "other", "metal": i.get("metal"),
             "gemstone": i.get("gemstone"), "stone_shape": i.get("stone_shape"), "price_band": band}
            for i, band in zip(items, bands)]


def given_attributes(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items as the catalog was given them: every field that ingest filled in from
    recognition (named in ``attributes["predicted"]`` without ``"filled": false``) is blanked.

    Shoppers drawn from these do not depend on the model: with the filled fields, a change to
    recognition alone (six of 2,400 demo fields, measured 2026-11-28) redrew every simulated shopper
    and moved one population's gain by ten points with identical embeddings."""
    out = []
    for item in items:
        predicted = (item.get("attributes") or {}).get("predicted") or {}
        filled = {name for name, guess in predicted.items() if isinstance(guess, Mapping) and guess.get("filled", True)}
        out.append({k: (None if k in filled else v) for k, v in item.items()})
    return out


@dataclass
class EmbeddingTastes:
    """Tastes that live in the image-embedding space, not in the attribute table: each is a
    cluster of look-alike pieces. The clusters are found after each item's category mean and
    metal mean are taken out of its vector, so a cluster gathers a look (a style, a finish, a
    shape) across kinds of piece and metals, which no catalog field names. ``match[c]`` is every
    item's closeness to cluster c's centre, 0 for the farther half of the catalog, 1 at the
    closest item."""

    match: np.ndarray  # float64 [clusters, items], in catalog order
    spread: list[dict[str, int]]  # per cluster: categories and metals among its 20 closest items

    @classmethod
    def of(cls, items: Sequence[Mapping[str, Any]], vectors: Mapping[int, np.ndarray],
           clusters: int = 24, seed: int = 0) -> "EmbeddingTastes":
        table = item_table(items)
        dim = len(next(iter(vectors.values())))
        matrix = np.stack([vectors.get(t["id"], np.zeros(dim)) for t in table]).astype(np.float64)
        residual = matrix.copy()
        for field_name in ("category", "metal"):
            values = np.array([str(t[field_name]) for t in table], dtype=object)
            for value in set(values.tolist()):
                rows = values == value
                residual[rows] -= matrix[rows].mean(0) - matrix.mean(0)
        residual /= np.maximum(np.linalg.norm(residual, axis=1, keepdims=True), 1e-12)
        centres = _kmeans(residual, clusters, seed)
        cosine = centres @ residual.T
        middle = np.median(cosine, axis=1, keepdims=True)
        top = cosine.max(axis=1, keepdims=True)
        match = np.clip((cosine - middle) / np.maximum(top - middle, 1e-12), 0.0, 1.0)
        spread = []
        for row in cosine:
            near = np.argsort(-row)[:20]
            spread.append({"categories": len({table[i]["category"] for i in near}),
                           "metals": len({table[i]["metal"] for i in near})})
        return cls(match, spread)


def _kmeans(points: np.ndarray, k: int, seed: int, rounds: int = 25) -> np.ndarray:
    """Spherical k-means with a k-means++ start; deterministic by seed."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    centres = [points[rng.integers(len(points))]]
    for _ in range(k - 1):
        distance = np.maximum(1.0 - np.max(np.stack(centres) @ points.T, axis=0), 0.0)
        total = distance.sum()
        centres.append(points[rng.choice(len(points), p=distance / total)] if total > 0
                       else points[rng.integers(len(points))])
    centres = np.stack(centres)
    for _ in range(rounds):
        assigned = np.argmax(points @ centres.T, axis=1)
        for c in range(k):
            members = points[assigned == c]
            if len(members):
                mean = members.sum(0)
                centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return centres


def simulate(items: Sequence[Mapping[str, Any]], config: SimulationConfig, seed: int,
             embedding_tastes: EmbeddingTastes | None = None) -> list[SimulatedUser]:
    """Shoppers whose tastes are attribute values, or, with ``embedding_tastes``, clusters of
    look-alike pieces in the image-embedding space."""
    rng = random.Random(seed)
    table = item_table(items)
    n = len(table)
    popularity = 1.0 / (1 + np.arange(n)) ** config.popularity_skew
    popularity = popularity[np.random.default_rng(seed).permutation(n)]
    attr = {a: np.array([t[a] or "" for t in table], dtype=object) for a in ("category",) + TASTE_ATTRIBUTES}
    categories = sorted(set(attr["category"]))
    users = []
    for u in range(config.users):
        count = rng.choices([1, 2, 3], weights=[0.4, 0.35, 0.25])[0]
        tastes = []
        for _ in range(count if embedding_tastes is None else 0):
            anchor = table[rng.randrange(n)]  # tastes are grounded in what the catalog has
            taste = {"category": anchor["category"] if rng.random() < 0.8 else rng.choice(categories)}
            for a in rng.sample(TASTE_ATTRIBUTES, rng.randint(1, 3)):
                if anchor[a]:
                    taste[a] = anchor[a]
            tastes.append(taste)
        if embedding_tastes is not None:
            tastes = [{"look": str(c)} for c in rng.sample(range(len(embedding_tastes.match)), count)]
        weights = [rng.random() + 0.3 for _ in tastes]
        user = SimulatedUser(f"sim-{seed}-{u}", tastes, weights)
        affinity = []
        for taste in tastes:
            if embedding_tastes is not None:
                affinity.append(embedding_tastes.match[int(taste["look"])])
                continue
            match = sum((attr[a] == v).astype(float) for a, v in taste.items()) / len(taste)
            affinity.append(match)
        ts = config.start_ts + rng.uniform(0, 30 * 86400)
        for _ in range(rng.randint(*config.sessions)):
            t = rng.choices(range(len(tastes)), weights=weights)[0]
            appeal = popularity * (0.02 + affinity[t] ** config.sharpness)
            appeal = appeal / appeal.sum()
            for _ in range(rng.randint(*config.views_per_session)):
                if rng.random() < config.noise:
                    index = rng.randrange(n)
                else:
                    index = int(np.searchsorted(np.cumsum(appeal), rng.random() * appeal.sum()))
                    index = min(index, n - 1)
                item_id = table[index]["id"]
                match = float(affinity[t][index])
                ts += rng.uniform(20, 300)
                user.events.append({"user_id": user.user_id, "item_id": item_id, "kind": "view", "ts": ts})
                if rng.random() < config.p_like * match:
                    ts += 5
                    user.events.append({"user_id": user.user_id, "item_id": item_id, "kind": "like", "ts": ts})
                if rng.random() < config.p_cart * match:
                    ts += 5
                    user.events.append({"user_id": user.user_id, "item_id": item_id, "kind": "add_to_cart", "ts": ts})
                    if rng.random() < config.p_purchase / max(config.p_cart, 1e-9) * match:
                        ts += 5
                        user.events.append({"user_id": user.user_id, "item_id": item_id, "kind": "purchase",
                                            "ts": ts})
            ts += rng.uniform(3600, 5 * 86400)
        users.append(user)
    return users
