"""Offline evaluation of recommendations against baselines on simulated shoppers.

Time-ordered leave-last-k-out: each shopper's last k events are held out; the
items in them (not already bought) are the targets.  Every method sees only
the earlier events, of all shoppers.  Metrics: HR@10, NDCG@10, catalog
coverage and intra-list diversity; also on shoppers with 2+ tastes alone.
Weights are tuned on one simulated population and reported on others; each
gain comes with a paired bootstrap interval over shoppers, because 400
shoppers leave a few points of sampling noise on an NDCG ratio.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jewelsearch.evaluate.simulate import SimulatedUser, SimulationConfig, given_attributes, simulate
from jewelsearch.index import VectorIndex
from jewelsearch.recommend.attributes import AttributeTable
from jewelsearch.recommend.blend import BlendWeights
from jewelsearch.recommend.collaborative import CollaborativeSignals
from jewelsearch.recommend.history import build_history
from jewelsearch.recommend.recommender import Recommender

K = 10
OURS = "blended (jewelsearch)"
CONTENT = "content (mean embedding)"
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
                     catalog_size: int, per_user: dict[str, np.ndarray] | None = None
                     ) -> dict[str, dict[str, float]]:
    """Metrics per method; ``per_user``, when given, receives each method's NDCG@10 per shopper
    (same order for every method, so differences are paired)."""
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
        if per_user is not None:
            per_user[name] = np.asarray(ndcgs, dtype=np.float64)
    return out


def gain_interval(strata: Sequence[tuple[np.ndarray, np.ndarray]], draws: int = 2000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(ours) / mean(baseline) - 1.

    ``strata`` holds (ours, baseline) per-shopper NDCG pairs per population; shoppers are
    resampled with replacement within each population, keeping each shopper's pair together.
    """
    rng = np.random.default_rng(seed)
    ours_total = np.zeros(draws)
    base_total = np.zeros(draws)
    for ours, base in strata:
        picks = rng.integers(0, len(ours), size=(draws, len(ours)))
        ours_total += ours[picks].sum(1)
        base_total += base[picks].sum(1)
    ratios = ours_total / np.maximum(base_total, 1e-12) - 1
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return float(low), float(high)


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
               CONTENT: content_mean, OURS: blended_with(weights)}
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
    "recency": [0.5, 0.7, 0.9], "explore": [0.2, 0.3, 0.4, 0.5, 0.6],
}


TUNING_POPULATIONS = 2
# A setting's coverage margin over content-only moves by about ±0.04 between populations; with
# a 0.02 margin the tuned weights fell 0.008 short on one of five fresh populations. Tuning with
# 0.05 keeps the chosen weights above the floor on populations it never saw. But a sharper
# embedding raises the floor itself (measured 2026-11-27: content-only covers 0.90 of the demo catalog,
# was 0.80) and then no setting may clear 0.05; the tuner then settles for the next margin
# rather than dropping the coverage requirement altogether.
COVERAGE_MARGINS = (0.05, 0.025, 0.0)


def cleared_margin(coverages: Sequence[float], floors: Sequence[float]) -> float | None:
    """The largest of ``COVERAGE_MARGINS`` by which every coverage beats its population's
    content-only floor; None when one falls below its floor."""
    worst = min(c - f for c, f in zip(coverages, floors))
    return next((m for m in COVERAGE_MARGINS if worst >= m - 1e-12), None)


def tune(index, vectors, items, config: SimulationConfig, seed: int, base: BlendWeights,
         attributes: AttributeTable | None = None, trials: int = 100,
         populations: int = TUNING_POPULATIONS) -> tuple[BlendWeights, list]:
    """Random search of blend weights on tuning populations (seeds ``seed``, ``seed + 1``, ...;
    never a reported one).

    The best mean NDCG@10 wins among settings whose catalog coverage is at least the content-only
    baseline's plus the first of ``COVERAGE_MARGINS`` on every tuning population (the issue asks for both);
    when none reaches it, among those clearing the next of ``COVERAGE_MARGINS``; when none even
    matches content-only, the best mean NDCG@10 overall. Each log row names the margin it cleared.
    """
    setups = []
    for offset in range(populations):
        train_events, cases = split(simulate(items, config, seed + offset))
        now = max(e["ts"] for e in train_events) + 60
        reference = build_methods(index, vectors, train_events, now, base, attributes=attributes)
        floor = evaluate_methods({"content": reference[CONTENT]}, cases, vectors, len(vectors))["content"]["coverage"]
        setups.append((train_events, cases, now, floor))
    rng = random.Random(seed)
    tried, log = set(), []
    best, best_key = base, (-2.0, -1.0)
    for _ in range(trials):
        choice = {name: rng.choice(values) for name, values in SEARCH_SPACE.items()}
        key = tuple(choice.values())
        if key in tried:
            continue
        tried.add(key)
        candidate = replace(base, **choice)
        ndcgs, coverages = [], []
        for train_events, cases, now, _ in setups:
            methods = build_methods(index, vectors, train_events, now, candidate, attributes=attributes)
            result = evaluate_methods({"blended": methods[OURS]}, cases, vectors, len(vectors))["blended"]
            ndcgs.append(result["ndcg@10"])
            coverages.append(result["coverage"])
        floors = [floor for *_, floor in setups]
        margin = cleared_margin(coverages, floors)
        log.append({**asdict(candidate), "ndcg@10": float(np.mean(ndcgs)), "coverage": coverages,
                    "coverage_floor": floors, "cleared_margin": margin})
        # A larger cleared margin outranks any NDCG@10; within one margin, NDCG@10 decides.
        rank = (-1.0 if margin is None else margin, float(np.mean(ndcgs)))
        if rank > best_key:
            best, best_key = candidate, rank
    return best, log


def run(index: VectorIndex, vectors: Mapping[int, np.ndarray], items: Sequence[Mapping[str, Any]], *,
        users: int = 400, seed: int = 1, tune_seed: int = 1001, weights: BlendWeights | None = None,
        do_tune: bool = True, replicate_seeds: Sequence[int] = (2, 3, 4, 5),
        shoppers_from_given: bool = False) -> dict[str, Any]:
    """Tune on ``tune_seed`` and the next seed, report every method on ``seed``, then the headline comparison
    again on ``replicate_seeds`` (fresh populations), and pooled over all of them.

    The recommender always sees the catalog as served (fields recognition filled in included).
    With ``shoppers_from_given`` the simulated shoppers' tastes are drawn from the given fields
    only (``simulate.given_attributes``), so two models are compared on the same shoppers."""
    config = SimulationConfig(users=users)
    weights = weights or BlendWeights()
    attributes = AttributeTable.from_rows(items)
    world = given_attributes(items) if shoppers_from_given else items
    trials: list = []
    if do_tune:
        # Same size as the reported population: coverage grows with the number of shoppers, so a
        # smaller tuning population would judge the coverage floor at the wrong scale.
        weights, trials = tune(index, vectors, world, config, tune_seed, weights, attributes)
    chosen = asdict(weights)
    tuning_margin = next((row["cleared_margin"] for row in trials
                          if all(row[name] == value for name, value in chosen.items())), None)
    population = simulate(world, config, seed)
    per_user: dict[str, np.ndarray] = {}
    results = _compare(index, vectors, population, weights, attributes, ablations=True, per_user=per_user)
    headline = _headline_of(results, per_user)
    replicates, runs = [], [(results, per_user)]
    for extra in replicate_seeds:
        scores: dict[str, np.ndarray] = {}
        other = _compare(index, vectors, simulate(world, config, extra), weights, attributes, per_user=scores)
        replicates.append({"seed": extra, **_headline_of(other, scores)})
        runs.append((other, scores))
    gains = [headline["ndcg_gain_over_best_baseline"]] + [r["ndcg_gain_over_best_baseline"] for r in replicates]
    return {"seed": seed, "tune_seed": tune_seed, "users": users, "catalog": len(vectors),
            "events": sum(len(u.events) for u in population), "weights": asdict(weights),
            "results": results, **headline, "replicates": replicates,
            "mean_ndcg_gain_over_best_baseline": float(np.mean(gains)),
            "pooled": _pooled(runs, [seed, *replicate_seeds]),
            "tuning_trials": len(trials), "tuning_margin": tuning_margin, "tuning": trials,
            "config": asdict(config), "shoppers_from": "given attributes" if shoppers_from_given else "catalog"}


def _compare(index, vectors, population, weights, attributes, ablations: bool = False, per_user=None):
    train_events, cases = split(population)
    now = max(e["ts"] for e in train_events) + 60
    methods = build_methods(index, vectors, train_events, now, weights, attributes=attributes, ablations=ablations)
    return evaluate_methods(methods, cases, vectors, len(vectors), per_user)


def _headline_of(results: Mapping[str, Mapping[str, float]],
                 per_user: Mapping[str, np.ndarray]) -> dict[str, Any]:
    baselines = {k: v for k, v in results.items() if not k.startswith("blended")}
    best_name = max(baselines, key=lambda k: baselines[k]["ndcg@10"])
    ours = results[OURS]
    low, high = gain_interval([(per_user[OURS], per_user[best_name])])
    return {"best_baseline": best_name,
            "ndcg_gain_over_best_baseline": ours["ndcg@10"] / max(baselines[best_name]["ndcg@10"], 1e-9) - 1,
            "ndcg_gain_interval": [low, high],
            "coverage_vs_content": ours["coverage"] - results[CONTENT]["coverage"]}


def _pooled(runs, seeds: Sequence[int]) -> dict[str, Any]:
    """All populations' shoppers together, against the one baseline that is best over all of
    them (a fixed competitor, not each population's luckiest)."""
    baselines = [k for k in runs[0][1] if not k.startswith("blended")]
    pooled_ndcg = {k: float(np.mean(np.concatenate([scores[k] for _, scores in runs]))) for k in baselines + [OURS]}
    best = max(baselines, key=lambda k: pooled_ndcg[k])
    low, high = gain_interval([(scores[OURS], scores[best]) for _, scores in runs])
    margins = [results[OURS]["coverage"] - results[CONTENT]["coverage"] for results, _ in runs]
    return {"seeds": list(seeds), "users": int(sum(len(scores[OURS]) for _, scores in runs)),
            "ndcg@10": pooled_ndcg, "best_baseline": best,
            "ndcg_gain_over_best_baseline": pooled_ndcg[OURS] / max(pooled_ndcg[best], 1e-9) - 1,
            "ndcg_gain_interval": [low, high], "smallest_coverage_vs_content": float(min(margins))}
