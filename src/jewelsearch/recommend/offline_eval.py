"""Offline evaluation of recommendations against baselines on simulated shoppers.

Time-ordered leave-last-k-out: each shopper's last k events are held out; the
items in them (not already bought) are the targets.  Every method sees only
the earlier events, of all shoppers.  Metrics: HR@10, NDCG@10, catalog
coverage and intra-list diversity; also on shoppers with 2+ tastes alone.
Weights are tuned on one simulated population and reported on another.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..index import VectorIndex
from .attributes import AttributeTable
from .blend import BlendWeights
from .collaborative import CollaborativeSignals
from .history import build_history
from .recommender import Recommender
from .simulate import SimulationConfig, SimulatedUser, simulate

K = 10
Method = Callable[[Any], list[int]]


def split(users: Sequence[SimulatedUser], holdout: int = 3):
    train_events, cases = [], []
    for user in users:
        events = sorted(user.events, key=lambda e: e["ts"])
        if len(events) <= holdout + 2:
            train_events.extend(events)
            continue
        past, future = events[:-holdout], events[-holdout:]
        train_events.extend(past)
        bought = {e["item_id"] for e in past if e["kind"] == "purchase"}
        targets = {e["item_id"] for e in future} - bought
        if targets:
            cases.append((user, past, targets))
    return train_events, cases


def ndcg(ranked: Sequence[int], targets: set[int], k: int = K) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in targets)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(targets))))
    return dcg / ideal if ideal else 0.0


def evaluate_methods(methods: Mapping[str, Method], cases, vectors: Mapping[int, np.ndarray],
                     catalog_size: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, method in methods.items():
        hits, ndcgs, ild, shown, multi_ndcg, multi_hits = [], [], [], set(), [], []
        started = time.perf_counter()
        for user, past, targets in cases:
            ranked = method((user, past))[:K]
            hit = float(any(i in targets for i in ranked))
            score = ndcg(ranked, targets)
            hits.append(hit)
            ndcgs.append(score)
            if len(user.tastes) >= 2:
                multi_hits.append(hit)
                multi_ndcg.append(score)
            shown.update(ranked)
            vs = [vectors[i] for i in ranked if i in vectors]
            if len(vs) >= 2:
                m = np.stack(vs)
                sims = m @ m.T
                n = len(vs)
                ild.append(float((n * n - sims.sum()) / (n * (n - 1))))
        out[name] = {"hr@10": float(np.mean(hits)), "ndcg@10": float(np.mean(ndcgs)),
                     "coverage": len(shown) / max(catalog_size, 1), "diversity": float(np.mean(ild)) if ild else 0.0,
                     "multi_taste_hr@10": float(np.mean(multi_hits)) if multi_hits else 0.0,
                     "multi_taste_ndcg@10": float(np.mean(multi_ndcg)) if multi_ndcg else 0.0,
                     "users": len(cases), "multi_taste_users": len(multi_ndcg),
                     "ms_per_user": 1000 * (time.perf_counter() - started) / max(len(cases), 1)}
    return out


def build_methods(index: VectorIndex, vectors: Mapping[int, np.ndarray], train_events, now: float,
                  weights: BlendWeights, seed: int = 0, attributes: AttributeTable | None = None,
                  ablations: bool = False) -> dict[str, Method]:
    weighted = [dict(e, weight=_weight(e["kind"])) for e in train_events]
    signals = CollaborativeSignals.build(weighted, now=now)
    lookup = lambda ids: {i: vectors[i] for i in ids if i in vectors}  # noqa: E731
    all_ids = index.ids().tolist()
    popular = [i for i, _ in signals.most_popular(len(all_ids))]
    rng = random.Random(seed)

    def history_of(past):
        return build_history("u", [dict(e, weight=_weight(e["kind"])) for e in past], now=now,
                             kind_rank=_RANK)

    def random_method(case):
        user, past = case
        bought = {e["item_id"] for e in past if e["kind"] == "purchase"}
        return [i for i in rng.sample(all_ids, min(len(all_ids), K + len(bought))) if i not in bought][:K]

    def popularity(case):
        bought = {e["item_id"] for e in case[1] if e["kind"] == "purchase"}
        return [i for i in popular if i not in bought][:K]

    def item_knn(case):
        history = history_of(case[1])
        co = signals.co_engaged(history.weights, 200)
        ranked = [i for i in sorted(co, key=lambda i: -co[i][0]) if i not in history.purchased]
        return (ranked + [i for i in popular if i not in history.purchased and i not in co])[:K]

    def content_mean(case):
        history = history_of(case[1])
        ids = [i for i in history.weights if i in vectors]
        if not ids:
            return popularity(case)
        w = np.array([history.weights[i] for i in ids], dtype=np.float32)
        q = (w[:, None] * np.stack([vectors[i] for i in ids])).sum(0)
        q /= max(float(np.linalg.norm(q)), 1e-9)
        (found, _), = index.search(q, K, exclude_ids=history.purchased)
        return found.tolist()

    def blended_with(blend: BlendWeights) -> Method:
        recommender = Recommender(index, lookup, signals, blend, attributes=attributes)
        return lambda case: [r.item_id for r in recommender.recommend(history_of(case[1]), K)]

    methods = {"random": random_method, "popularity": popularity, "item-kNN CF": item_knn,
               "content (mean embedding)": content_mean, "blended (jewelsearch)": blended_with(weights)}
    if ablations:  # what each newer part adds, with the other weights as tuned
        methods["blended, no current-visit weighting"] = blended_with(replace(weights, recency=0.0))
        methods["blended, no attribute taste"] = blended_with(replace(weights, taste=0.0))
        methods["blended, no exploration slots"] = blended_with(replace(weights, explore=0.0))
    return methods


_WEIGHTS = {"view": 1.0, "click": 2.0, "like": 4.0, "add_to_cart": 6.0, "purchase": 10.0}
_RANK = _WEIGHTS


def _weight(kind: str) -> float:
    return _WEIGHTS[kind]


SEARCH_SPACE = {
    "similarity": [0.3, 1.0], "co_engagement": [1.0, 2.5, 6.0], "popularity": [0.0, 0.4, 0.8],
    "history": [0.5, 1.0, 2.0], "taste": [0.6, 0.8, 0.9], "diversity": [0.0, 0.2, 0.4],
    "recency": [0.5, 0.7, 0.9], "explore": [0.2, 0.3, 0.4, 0.5],
}


def tune(index, vectors, items, config: SimulationConfig, seed: int, base: BlendWeights,
         attributes: AttributeTable | None = None, trials: int = 100) -> tuple[BlendWeights, list]:
    """Random search of blend weights on a tuning population (never the reported one).

    The best NDCG@10 wins among settings whose catalog coverage is at least the content-only
    baseline's on the same population (the issue asks for both); when none reaches it, the
    best NDCG@10 overall.
    """
    users = simulate(items, config, seed)
    train_events, cases = split(users)
    now = max(e["ts"] for e in train_events) + 60
    reference = build_methods(index, vectors, train_events, now, base, attributes=attributes)
    floor = evaluate_methods({"content": reference["content (mean embedding)"]}, cases, vectors,
                             len(vectors))["content"]["coverage"]
    rng = random.Random(seed)
    tried, log = set(), []
    best, best_key = base, (False, -1.0)
    for _ in range(trials):
        choice = {name: rng.choice(values) for name, values in SEARCH_SPACE.items()}
        key = tuple(choice.values())
        if key in tried:
            continue
        tried.add(key)
        candidate = replace(base, **choice)
        methods = build_methods(index, vectors, train_events, now, candidate, attributes=attributes)
        result = evaluate_methods({"blended": methods["blended (jewelsearch)"]}, cases, vectors,
                                  len(vectors))["blended"]
        log.append({**asdict(candidate), "ndcg@10": result["ndcg@10"], "coverage": result["coverage"]})
        rank = (result["coverage"] >= floor, result["ndcg@10"])
        if rank > best_key:
            best, best_key = candidate, rank
    return best, log


def run(index: VectorIndex, vectors: Mapping[int, np.ndarray], items: Sequence[Mapping[str, Any]], *,
        users: int = 400, seed: int = 1, tune_seed: int = 1001, weights: BlendWeights | None = None,
        do_tune: bool = True, replicate_seeds: Sequence[int] = (2, 3)) -> dict[str, Any]:
    """Tune on ``tune_seed``, report every method on ``seed``, then the headline comparison
    again on ``replicate_seeds`` (fresh populations) to show how much it moves between draws."""
    config = SimulationConfig(users=users)
    weights = weights or BlendWeights()
    attributes = AttributeTable.from_rows(items)
    trials: list = []
    if do_tune:
        # Same size as the reported population: coverage grows with the number of shoppers, so a
        # smaller tuning population would judge the coverage floor at the wrong scale.
        weights, trials = tune(index, vectors, items, config, tune_seed, weights, attributes)
    population = simulate(items, config, seed)
    results = _compare(index, vectors, population, weights, attributes, ablations=True)
    headline = _headline_of(results)
    replicates = []
    for extra in replicate_seeds:
        other = _compare(index, vectors, simulate(items, config, extra), weights, attributes)
        replicates.append({"seed": extra, **_headline_of(other)})
    gains = [headline["ndcg_gain_over_best_baseline"]] + [r["ndcg_gain_over_best_baseline"] for r in replicates]
    return {"seed": seed, "tune_seed": tune_seed, "users": users, "catalog": len(vectors),
            "events": sum(len(u.events) for u in population), "weights": asdict(weights),
            "results": results, **headline, "replicates": replicates,
            "mean_ndcg_gain_over_best_baseline": float(np.mean(gains)),
            "tuning_trials": len(trials), "tuning": trials, "config": asdict(config)}


def _compare(index, vectors, population, weights, attributes, ablations: bool = False):
    train_events, cases = split(population)
    now = max(e["ts"] for e in train_events) + 60
    methods = build_methods(index, vectors, train_events, now, weights, attributes=attributes, ablations=ablations)
    return evaluate_methods(methods, cases, vectors, len(vectors))


def _headline_of(results: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    baselines = {k: v for k, v in results.items() if not k.startswith("blended")}
    best_name = max(baselines, key=lambda k: baselines[k]["ndcg@10"])
    ours = results["blended (jewelsearch)"]
    return {"best_baseline": best_name,
            "ndcg_gain_over_best_baseline": ours["ndcg@10"] / max(baselines[best_name]["ndcg@10"], 1e-9) - 1,
            "coverage_vs_content": ours["coverage"] - results["content (mean embedding)"]["coverage"]}
