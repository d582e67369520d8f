"""Combining ranked lists: a convex combination of normalised scores, or reciprocal-rank fusion.

Each signal is a mapping item id -> score (higher is better) over the candidates it found.
The convex combination rescales each signal to 0-1, so weights compare like with like; an item
a signal did not find gets 0 from it. How a signal is rescaled depends on what its scores
mean: cosine similarities crowd into a narrow band, so they are stretched over their
candidates (min-max); BM25 scores are ratios from zero, so they are divided by the best one
(min-max would give the weakest word match nothing, like a miss); a share that is already
0-1 (the attributes matched) is taken as it is. Reciprocal-rank
fusion (Cormack et al. 2009) ignores the scores and adds 1 / (k + rank) per list.

>>> signals = {"semantic": {1: 0.9, 2: 0.7, 3: 0.5}, "lexical": {2: 7.0, 3: 2.0}}
>>> [(item, round(score, 3)) for item, score in fuse(signals, {"semantic": 1.0, "lexical": 1.0})]
[(2, 1.5), (1, 1.0), (3, 0.0)]
>>> [(item, round(score, 4)) for item, score in fuse(signals, {"semantic": 1.0, "lexical": 1.0}, method="rrf")]
[(2, 0.0325), (3, 0.032), (1, 0.0164)]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

METHODS = ("convex", "rrf")


def min_max(scores: Mapping[int, float]) -> dict[int, float]:
    """Scores rescaled to 0-1; a signal whose candidates all score the same gives them 1."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low < 1e-12:
        return {item: 1.0 for item in scores}
    return {item: (score - low) / (high - low) for item, score in scores.items()}


def by_max(scores: Mapping[int, float]) -> dict[int, float]:
    """Non-negative scores divided by the best one."""
    best = max(scores.values(), default=0.0)
    return {item: max(score, 0.0) / best for item, score in scores.items()} if best > 0 else dict.fromkeys(scores, 0.0)


SCALES = {"min_max": min_max, "max": by_max, "raw": dict}


def fuse(signals: Mapping[str, Mapping[int, float]], weights: Mapping[str, float], *,
         method: str = "convex", rrf_k: int = 60, scales: Mapping[str, str] | None = None) -> list[tuple[int, float]]:
    """All candidates with their fused score, best first (ties: by item id, for a stable order).

    ``weights`` names the signals that count; one with weight 0 or missing is left out.
    ``scales`` says how the convex combination rescales each signal ("min_max", the default;
    "max"; or "raw").
    """
    if method not in METHODS:
        raise ValueError(f"fusion method must be one of {METHODS}")
    if method == "convex":
        return _convex(signals, weights, scales or {})
    fused: dict[int, float] = {}
    for name, scores in signals.items():
        weight = float(weights.get(name, 0.0))
        if weight <= 0 or not scores:
            continue
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
        for rank, (item, _) in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


def _convex(signals: Mapping[str, Mapping[int, float]], weights: Mapping[str, float],
            scales: Mapping[str, str]) -> list[tuple[int, float]]:
    """The convex combination over arrays: a text query fuses several hundred candidates, where
    dictionaries cost about twice the time. Each item's sum is built in the same order, from the
    same float64 operations, as ``SCALES`` would give one item at a time, so the scores are the
    same to the last bit (tests/test_fusion.py)."""
    parts = []
    for name, scores in signals.items():
        weight = float(weights.get(name, 0.0))
        if weight <= 0 or not scores:
            continue
        items = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
        values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        parts.append((items, weight * _scaled(values, scales.get(name, "min_max"))))
    if not parts:
        return []
    every, where = np.unique(np.concatenate([items for items, _ in parts]), return_inverse=True)
    fused = np.zeros(len(every))
    start = 0
    for items, values in parts:  # a signal names each item once, so no index repeats here
        fused[where[start:start + len(items)]] += values
        start += len(items)
    order = np.lexsort((every, -fused))
    return list(zip(every[order].tolist(), fused[order].tolist()))


def _scaled(values: np.ndarray, scale: str) -> np.ndarray:
    if scale not in SCALES:
        raise KeyError(scale)
    if scale == "min_max":
        low, high = values.min(), values.max()
        return np.ones_like(values) if high - low < 1e-12 else (values - low) / (high - low)
    if scale == "max":
        best = values.max()
        return np.maximum(values, 0.0) / best if best > 0 else np.zeros_like(values)
    return values
