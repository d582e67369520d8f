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

from jewelsearch.evaluate import baselines
from jewelsearch.evaluate.simulate import (
    EmbeddingTastes,
    SimulatedUser,
    SimulationConfig,
    given_attributes,
    simulate,
)
from jewelsearch.index import VectorIndex
from jewelsearch.recommend.attributes import AttributeTable
from jewelsearch.recommend.blend import BlendWeights
from jewelsearch.recommend.collaborative import CollaborativeSignals
from jewelsearch.recommend.factors import DEFAULT_REGULARISATION, ItemFactors
from jewelsearch.recommend.history import build_history
from jewelsearch.recommend.recommender import Recommender

K = 10
# A gap this long between two events starts a new visit (the simulator's visits are hours
# apart, its views minutes).
VISIT_GAP_SECONDS = 1800
OURS = "blended (jewelsearch)"
CONTENT = "content (mean embedding)"
Method = Callable[[Any], list[int]]
NEXT = "next in visit: "  # per_user key prefix of a method's next-in-visit NDCG@10
# The strong baselines and the hyper-parameter each is tuned over (``evaluate/baselines.py``).
STRONG = {"EASE": ("lambda", baselines.EASE_LAMBDAS), "ALS (implicit)": ("regularisation", baselines.ALS_REGULARISATION),
          "BPR (implicit)": ("factors", baselines.BPR_FACTORS),
          "VBPR (cornac, image embeddings)": ("lambda_w", baselines.VBPR_LAMBDA_W)}


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


def next_in_visit(user: SimulatedUser, past: Sequence[Mapping[str, Any]]) -> int | None:
    """The item of the shopper's next view when it comes in the same visit as their last
    earlier event (what a product page's "you may also like" serves), unless already bought."""
    last = past[-1]["ts"]
    after = sorted((e for e in user.events if e["ts"] > last and e["kind"] == "view"), key=lambda e: e["ts"])
    if not after or after[0]["ts"] - last > VISIT_GAP_SECONDS:
        return None
    bought = {e["item_id"] for e in past if e["kind"] == "purchase"}
    return None if after[0]["item_id"] in bought else after[0]["item_id"]


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
        next_hits, next_ndcgs = [], []
        started = time.perf_counter()
        for user, past, targets in cases:
            ranked = method((user, past))[:K]
            hit = float(any(i in targets for i in ranked))
            score = ndcg(ranked, targets)
            hits.append(hit)
            ndcgs.append(score)
            following = next_in_visit(user, past)
            if following is not None:
                next_hits.append(float(following in ranked))
                next_ndcgs.append(ndcg(ranked, {following}))
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
                     "next_in_visit_hr@10": float(np.mean(next_hits)) if next_hits else 0.0,
                     "next_in_visit_ndcg@10": float(np.mean(next_ndcgs)) if next_ndcgs else 0.0,
                     "next_in_visit_users": len(next_ndcgs),
                     "users": len(cases), "multi_taste_users": len(multi_ndcg),
                     "ms_per_user": 1000 * (time.perf_counter() - started) / max(len(cases), 1)}
        if per_user is not None:
            per_user[name] = np.asarray(ndcgs, dtype=np.float64)
            per_user[NEXT + name] = np.asarray(next_ndcgs, dtype=np.float64)
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
                  ablations: bool = False, strong: Mapping[str, float] | None = None,
                  factors: ItemFactors | None = None) -> dict[str, Method]:
    """The methods compared. ``strong``: the strong baselines to add, by name, each with its tuned
    hyper-parameter; ``factors``: the ALS item factors the blend reads (fitted on ``train_events``)."""
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
        recommender = Recommender(index, lookup, signals, blend, attributes=attributes, factors=factors)
        return lambda case: [r.item_id for r in recommender.recommend(history_of(case[1]), K)]

    methods = {"random": random_method, "popularity": popularity, "item-kNN CF": item_knn,
               CONTENT: content_mean}
    methods.update(strong_baselines(vectors, train_events, strong or {}, all_ids, seed))
    methods[OURS] = blended_with(weights)
    if ablations and factors is not None and weights.factors > 0:
        methods["blended, no ALS source"] = blended_with(replace(weights, factors=0.0))
    if ablations:  # what each newer part adds, with the other weights as tuned
        methods["blended, no current-visit weighting"] = blended_with(replace(weights, recency=0.0))
        methods["blended, no attribute taste"] = blended_with(replace(weights, taste=0.0))
        methods["blended, no exploration slots"] = blended_with(replace(weights, explore=0.0))
    return methods


def strong_baselines(vectors: Mapping[int, np.ndarray], train_events, chosen: Mapping[str, float],
                     item_ids: Sequence[int], seed: int = 0) -> dict[str, Method]:
    """The strong baselines named in ``chosen``, each fitted with its chosen hyper-parameter."""
    data = baselines.Interactions.of(train_events, item_ids, _weight)
    build = {"EASE": lambda v: baselines.ease(data, _weight, v),
             "ALS (implicit)": lambda v: baselines.als(data, v, seed=seed),
             "BPR (implicit)": lambda v: baselines.bpr(data, int(v), seed=seed),
             "VBPR (cornac, image embeddings)": lambda v: baselines.vbpr(data, vectors, v, seed=seed)}
    return {name: build[name](value) for name, value in chosen.items()}


def fit_factors(train_events, regularisation: float) -> ItemFactors:
    """The blend's ALS item factors, fitted as `jewelsearch recommender fit` fits them."""
    return ItemFactors.fit([dict(e, weight=_weight(e["kind"])) for e in train_events], erasures=0,
                           regularisation=regularisation)


def tune_baselines(vectors, world, config: SimulationConfig, seed: int, item_ids: Sequence[int],
                   populations: int = 2,
                   looks: EmbeddingTastes | None = None) -> tuple[dict[str, float], list]:
    """Each strong baseline's hyper-parameter: the value of its grid with the best mean NDCG@10 on
    the tuning populations (seeds ``seed``, ``seed + 1``, ...; never a reported one)."""
    setups = []
    for offset in range(populations):
        train_events, cases = split(simulate(world, config, seed + offset, looks))
        setups.append((train_events, cases))
    chosen, log = {}, []
    for name, (parameter, grid) in STRONG.items():
        best = None
        for value in grid:
            scores = []
            for train_events, cases in setups:
                method = strong_baselines(vectors, train_events, {name: value}, item_ids)[name]
                scores.append(evaluate_methods({name: method}, cases, vectors, len(vectors))[name]["ndcg@10"])
            log.append({"method": name, parameter: value, "ndcg@10": float(np.mean(scores))})
            if best is None or np.mean(scores) > best[1]:
                best = (value, float(np.mean(scores)))
        chosen[name] = best[0]
    return chosen, log


_WEIGHTS = {"view": 1.0, "click": 2.0, "like": 4.0, "add_to_cart": 6.0, "purchase": 10.0}
_RANK = _WEIGHTS


def _weight(kind: str) -> float:
    return _WEIGHTS[kind]


SEARCH_SPACE = {
    "similarity": [0.3, 1.0], "co_engagement": [1.0, 2.5, 6.0], "popularity": [0.0, 0.4, 0.8],
    "history": [0.5, 1.0, 2.0], "taste": [0.6, 0.8, 0.9], "diversity": [0.0, 0.2, 0.4],
    "recency": [0.5, 0.7, 0.9], "explore": [0.2, 0.3, 0.4, 0.5, 0.6],
    "factors": [0.0, 1.0, 2.5, 6.0],
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
         populations: int = TUNING_POPULATIONS, regularisation: float | None = None,
         looks: EmbeddingTastes | None = None, search: Sequence[str] | None = None) -> tuple[BlendWeights, list]:
    """Random search of blend weights on tuning populations (seeds ``seed``, ``seed + 1``, ...;
    never a reported one).

    The best mean NDCG@10 wins among settings whose catalog coverage is at least the content-only
    baseline's plus the first of ``COVERAGE_MARGINS`` on every tuning population (the issue asks for both);
    when none reaches it, among those clearing the next of ``COVERAGE_MARGINS``; when none even
    matches content-only, the best mean NDCG@10 overall. Each log row names the margin it cleared.
    ``search`` restricts the search to those weights of ``SEARCH_SPACE``, the others kept as in ``base``.
    """
    space = {name: values for name, values in SEARCH_SPACE.items() if search is None or name in search}
    setups = []
    for offset in range(populations):
        train_events, cases = split(simulate(items, config, seed + offset, looks))
        now = max(e["ts"] for e in train_events) + 60
        reference = build_methods(index, vectors, train_events, now, base, attributes=attributes)
        floor = evaluate_methods({"content": reference[CONTENT]}, cases, vectors, len(vectors))["content"]["coverage"]
        factors = fit_factors(train_events, regularisation) if regularisation is not None else None
        setups.append((train_events, cases, now, factors, floor))
    rng = random.Random(seed)
    tried, log = set(), []
    best, best_key = base, (-2.0, -1.0)
    for _ in range(trials):
        choice = {name: rng.choice(values) for name, values in space.items()}
        key = tuple(choice.values())
        if key in tried:
            continue
        tried.add(key)
        candidate = replace(base, **choice)
        ndcgs, coverages = [], []
        for train_events, cases, now, factors, _ in setups:
            methods = build_methods(index, vectors, train_events, now, candidate, attributes=attributes,
                                    factors=factors)
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


SHOPPERS = {"catalog": "catalog", "given": "given attributes", "looks": "looks in the image-embedding space"}


def run(index: VectorIndex, vectors: Mapping[int, np.ndarray], items: Sequence[Mapping[str, Any]], *,
        users: int = 400, seed: int = 1, tune_seed: int = 1001, weights: BlendWeights | None = None,
        do_tune: bool = True, replicate_seeds: Sequence[int] = (2, 3, 4, 5),
        shoppers_from: str = "catalog", strong: Mapping[str, float] | None = None,
        trials: int = 100, search: Sequence[str] | None = None) -> dict[str, Any]:
    """Tune on ``tune_seed`` and the next seed, report every method on ``seed``, then the headline comparison
    again on ``replicate_seeds`` (fresh populations), and pooled over all of them.

    The strong baselines' hyper-parameters are always tuned on the tuning populations (``strong``
    fixes them instead); the blend's weights too unless ``do_tune`` is False.
    The recommender always sees the catalog as served (fields recognition filled in included).
    ``shoppers_from``: "catalog" draws the simulated shoppers' tastes from the catalog as served;
    "given" from the given fields only (``simulate.given_attributes``), so two models are compared
    on the same shoppers; "looks" makes them clusters of look-alike pieces in the image-embedding
    space (``simulate.EmbeddingTastes``)."""
    if shoppers_from not in SHOPPERS:
        raise ValueError(f"shoppers_from must be one of {', '.join(SHOPPERS)}")
    config = SimulationConfig(users=users)
    weights = weights or BlendWeights()
    attributes = AttributeTable.from_rows(items)
    world = given_attributes(items) if shoppers_from == "given" else items
    looks = EmbeddingTastes.of(items, vectors) if shoppers_from == "looks" else None
    item_ids = index.ids().tolist()
    baseline_log: list = []
    if strong is None:
        strong, baseline_log = tune_baselines(vectors, world, config, tune_seed, item_ids, looks=looks)
    regularisation = strong.get("ALS (implicit)", DEFAULT_REGULARISATION)
    trials_log: list = []
    if do_tune:
        # Same size as the reported population: coverage grows with the number of shoppers, so a
        # smaller tuning population would judge the coverage floor at the wrong scale.
        weights, trials_log = tune(index, vectors, world, config, tune_seed, weights, attributes, trials=trials,
                                   regularisation=regularisation, looks=looks, search=search)
    chosen = asdict(weights)
    tuning_margin = next((row["cleared_margin"] for row in trials_log
                          if all(row[name] == value for name, value in chosen.items())), None)
    population = simulate(world, config, seed, looks)
    per_user: dict[str, np.ndarray] = {}
    setup = dict(strong=strong, regularisation=regularisation)
    results = _compare(index, vectors, population, weights, attributes, ablations=True, per_user=per_user, **setup)
    headline = _headline_of(results, per_user)
    replicates, runs = [], [(results, per_user)]
    for extra in replicate_seeds:
        scores: dict[str, np.ndarray] = {}
        other = _compare(index, vectors, simulate(world, config, extra, looks), weights, attributes,
                         per_user=scores, **setup)
        replicates.append({"seed": extra, **_headline_of(other, scores)})
        runs.append((other, scores))
    gains = [headline["ndcg_gain_over_best_baseline"]] + [r["ndcg_gain_over_best_baseline"] for r in replicates]
    return {"seed": seed, "tune_seed": tune_seed, "users": users, "catalog": len(vectors),
            "events": sum(len(u.events) for u in population), "weights": asdict(weights),
            "results": results, **headline, "replicates": replicates,
            "mean_ndcg_gain_over_best_baseline": float(np.mean(gains)),
            "pooled": _pooled(runs, [seed, *replicate_seeds]),
            "pooled_next_in_visit": _pooled(runs, [seed, *replicate_seeds], prefix=NEXT),
            "strong_baselines": dict(strong), "strong_baseline_tuning": baseline_log,
            "looks": None if looks is None else {"clusters": len(looks.match), "spread": looks.spread},
            "tuning_trials": len(trials_log), "tuning_margin": tuning_margin, "tuning": trials_log,
            "tuning_searched": sorted(SEARCH_SPACE if search is None else search),
            "config": asdict(config), "shoppers_from": SHOPPERS[shoppers_from]}


def _compare(index, vectors, population, weights, attributes, ablations: bool = False, per_user=None,
             strong=None, regularisation: float = DEFAULT_REGULARISATION):
    train_events, cases = split(population)
    now = max(e["ts"] for e in train_events) + 60
    factors = fit_factors(train_events, regularisation) if weights.factors > 0 else None
    methods = build_methods(index, vectors, train_events, now, weights, attributes=attributes, ablations=ablations,
                            strong=strong, factors=factors)
    return evaluate_methods(methods, cases, vectors, len(vectors), per_user)


def _is_baseline(name: str) -> bool:
    return not name.startswith("blended")


def _headline_of(results: Mapping[str, Mapping[str, float]],
                 per_user: Mapping[str, np.ndarray]) -> dict[str, Any]:
    baselines_ = {k: v for k, v in results.items() if _is_baseline(k)}
    best_name = max(baselines_, key=lambda k: baselines_[k]["ndcg@10"])
    ours = results[OURS]
    low, high = gain_interval([(per_user[OURS], per_user[best_name])])
    return {"best_baseline": best_name,
            "ndcg_gain_over_best_baseline": ours["ndcg@10"] / max(baselines_[best_name]["ndcg@10"], 1e-9) - 1,
            "ndcg_gain_interval": [low, high],
            "coverage_vs_content": ours["coverage"] - results[CONTENT]["coverage"]}


def _pooled(runs, seeds: Sequence[int], prefix: str = "") -> dict[str, Any]:
    """All populations' shoppers together, against the one baseline that is best over all of
    them (a fixed competitor, not each population's luckiest). ``prefix`` NEXT pools the
    next-in-visit NDCG@10 instead."""
    names = [k for k in runs[0][0] if _is_baseline(k)] + [OURS]
    pooled_ndcg = {k: float(np.mean(np.concatenate([scores[prefix + k] for _, scores in runs]))) for k in names}
    best = max(names[:-1], key=lambda k: pooled_ndcg[k])
    low, high = gain_interval([(scores[prefix + OURS], scores[prefix + best]) for _, scores in runs
                               if len(scores[prefix + OURS])])
    margins = [results[OURS]["coverage"] - results[CONTENT]["coverage"] for results, _ in runs]
    return {"seeds": list(seeds), "users": int(sum(len(scores[prefix + OURS]) for _, scores in runs)),
            "ndcg@10": pooled_ndcg, "best_baseline": best,
            "ndcg_gain_over_best_baseline": pooled_ndcg[OURS] / max(pooled_ndcg[best], 1e-9) - 1,
            "ndcg_gain_interval": [low, high], "smallest_coverage_vs_content": float(min(margins))}
